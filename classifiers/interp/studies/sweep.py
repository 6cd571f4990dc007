"""Saturation sweep: clamp one feature to each of several values and compare the outputs
side by side (greedy continuation, and the KL of the first next-token distribution from
the unclamped one). Shows where a feature starts to steer and where it saturates or
breaks the text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from classifiers.interp.studies.common import Setup, generate, kl, next_token_logprobs
from monitor.guard.interventions import FeatureIntervention


@dataclass(frozen=True)
class SweepRow:
    value: float | None
    """Clamp value; None = no intervention (the baseline row)."""
    kl: float
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "kl_next_token": round(self.kl, 5), "text": self.text}


@dataclass(frozen=True)
class SweepResult:
    feature: int
    mode: str
    rows: tuple[SweepRow, ...]

    def to_json(self) -> dict[str, Any]:
        return {"feature": self.feature, "mode": self.mode, "rows": [r.to_json() for r in self.rows]}


def sweep(setup: Setup, prompt_ids: Sequence[int], feature: int, values: Sequence[float],
          max_tokens: int = 24, mode: str = "clamp") -> SweepResult:
    """``mode="clamp"``: set the feature to each value; ``"steer"``: add value x W_dec[f]."""
    if mode not in ("clamp", "steer"):
        raise ValueError(f"mode must be clamp or steer; got {mode!r}")
    base_lp = next_token_logprobs(setup, prompt_ids, None)
    rows = [SweepRow(None, 0.0, generate(setup, prompt_ids, None, max_tokens).text)]
    for v in values:
        spec = FeatureIntervention.clamp([feature], v) if mode == "clamp" else FeatureIntervention.steer_feature(feature, v)
        lp = next_token_logprobs(setup, prompt_ids, spec)
        rows.append(SweepRow(float(v), kl(lp, base_lp), generate(setup, prompt_ids, spec, max_tokens).text))
    return SweepResult(feature, mode, tuple(rows))
