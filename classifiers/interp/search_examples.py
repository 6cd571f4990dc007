"""Feature search by examples: which features fire on a concept's prompts, and rarely
elsewhere.

For each feature, over the concept prompts (position 0 and special tokens excluded):

- ``mean_act``: the per-prompt pooled activation (``max`` by default: a concept often
  shows on a few tokens), averaged over prompts;
- ``frac_prompts``: fraction of prompts on which it fires at all;
- ``score = mean_act * log(1 / density)``, density from ``features.json`` (the fraction
  of corpus tokens it fires on). A feature active on every token scores ~0 however strong
  it is; a rare feature that fires on the concept ranks first. Without features.json the
  rarity factor is 1 (rank by mean activation).
- ``lift`` (only with neutral baseline prompts): ``mean_act / (baseline_mean_act + eps)``,
  where the baseline is pooled the same way; when a baseline is given the score becomes
  ``mean_act * log(1/density) * lift / (1 + lift)`` so a feature just as active on
  neutral text is halved at best, and one silent there keeps its full score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from classifiers.interp.evidence import FeatureEvidence, density_of, feature_evidence, rarity
from classifiers.interp.runtime import Encoded, pool

LIFT_EPS = 1e-3


@dataclass(frozen=True)
class ExampleHit:
    id: int
    score: float
    mean_act: float
    frac_prompts: float
    density: float
    lift: float | None
    evidence: FeatureEvidence

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "score": round(self.score, 4), "mean_act": round(self.mean_act, 4),
                "frac_prompts": round(self.frac_prompts, 3), "density": self.density,
                "lift": None if self.lift is None else round(self.lift, 3), "evidence": self.evidence.to_json()}


def pooled_matrix(encoded: Sequence[Encoded], how: str) -> torch.Tensor:
    """[n_prompts, d_sae] pooled codes."""
    return torch.stack([pool(e.kept_z, how) for e in encoded])


def search_by_examples(
    encoded: Sequence[Encoded], features: Mapping[str, Any] | None, top: int = 10,
    baseline: Sequence[Encoded] = (), pooling: str = "max",
) -> list[ExampleHit]:
    if not encoded:
        raise ValueError("no concept prompts")
    Z = pooled_matrix(encoded, pooling)
    mean_act = Z.mean(0)
    frac = (Z > 0).float().mean(0)
    has_file = bool((features or {}).get("features"))
    d_sae = Z.shape[1]
    dens = torch.tensor([density_of(features, f, has_file) for f in range(d_sae)]) if has_file \
        else torch.ones(d_sae)
    rar = torch.tensor([rarity(float(d)) for d in dens]) if has_file else torch.ones(d_sae)
    score = mean_act * rar
    lift = None
    if baseline:
        base = pooled_matrix(baseline, pooling).mean(0)
        lift = mean_act / (base + LIFT_EPS)
        score = score * lift / (1.0 + lift)
    order = torch.argsort(score, descending=True)[:top]
    return [
        ExampleHit(int(f), float(score[f]), float(mean_act[f]), float(frac[f]), float(dens[f]),
                   None if lift is None else float(lift[f]), feature_evidence(features, int(f)))
        for f in order.tolist() if float(mean_act[f]) > 0
    ]
