"""Ablation study: normal vs ablated (features clamped to 0, error term kept) greedy
outputs over a prompt set, with the KL of the first response token's distribution and
whether the greedy text changed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from classifiers.interp.studies.common import Setup, generate, kl, next_token_logprobs
from monitor.guard.interventions import FeatureIntervention


@dataclass(frozen=True)
class AblationRow:
    prompt: str
    normal: str
    ablated: str
    kl: float

    @property
    def changed(self) -> bool:
        return self.normal != self.ablated

    def to_json(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "normal": self.normal, "ablated": self.ablated,
                "changed": self.changed, "kl_first_token": round(self.kl, 5)}


@dataclass(frozen=True)
class AblationResult:
    features: tuple[int, ...]
    rows: tuple[AblationRow, ...]

    @property
    def changed_fraction(self) -> float:
        return sum(r.changed for r in self.rows) / max(len(self.rows), 1)

    def to_json(self) -> dict[str, Any]:
        return {"features": list(self.features), "changed_fraction": round(self.changed_fraction, 3),
                "mean_kl_first_token": round(sum(r.kl for r in self.rows) / max(len(self.rows), 1), 5),
                "rows": [r.to_json() for r in self.rows]}


def ablation_study(setup: Setup, prompts: Sequence[tuple[str, Sequence[int]]], features: Sequence[int],
                   max_tokens: int = 24) -> AblationResult:
    """``prompts``: (display label, token ids) pairs."""
    spec = FeatureIntervention.ablate(list(features))
    rows = []
    for label, ids in prompts:
        k = kl(next_token_logprobs(setup, ids, spec), next_token_logprobs(setup, ids, None))
        rows.append(AblationRow(label, generate(setup, ids, None, max_tokens).text,
                                generate(setup, ids, spec, max_tokens).text, k))
    return AblationResult(tuple(int(f) for f in features), tuple(rows))
