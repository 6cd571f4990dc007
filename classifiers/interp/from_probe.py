"""Features behind a probe, from its weights over SAE features.

Two views: the probe's own ``top_features`` list from probes.json (contribution = weight x
typical activation on positives, what ``clamp: top_k`` uses), and the raw weights (largest
positive weights: features whose firing raises the score most per unit of activation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from classifiers.interp.evidence import FeatureEvidence, feature_evidence


@dataclass(frozen=True)
class ProbeFeature:
    id: int
    weight: float
    contribution: float | None
    """From the probe's top_features (None if the feature is not in that list)."""
    evidence: FeatureEvidence

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "weight": round(self.weight, 5),
                "contribution": None if self.contribution is None else round(self.contribution, 5),
                "evidence": self.evidence.to_json()}


def probe_features(record: Any, features: Mapping[str, Any] | None = None, top: int = 10,
                   by: str = "contribution") -> list[ProbeFeature]:
    """``record`` is a :class:`classifiers.probes.io.ProbeRecord`.

    ``by="contribution"`` lists the probe's top_features (falls back to weights when the
    list is empty); ``by="weight"`` the largest positive weights; ``by="abs"`` the largest |weight|.
    """
    w = np.asarray(record.weights, dtype=np.float64).ravel()
    contrib = {int(f): float(c) for f, c in record.top_features}
    if by == "contribution" and contrib:
        ids = list(contrib)[:top]
    elif by in ("contribution", "weight"):
        ids = [int(i) for i in np.argsort(-w)[:top] if w[i] > 0]
    elif by == "abs":
        ids = [int(i) for i in np.argsort(-np.abs(w))[:top] if w[i] != 0]
    else:
        raise ValueError(f"by must be contribution, weight or abs; got {by!r}")
    # the weight vector may also cover the SAE error term (d_sae + 1 entries); ids index features
    return [ProbeFeature(i, float(w[i]), contrib.get(i), feature_evidence(features, i)) for i in ids]


def top_feature_ids(probes_json: Mapping[str, Any], name: str, k: int) -> list[int]:
    """The first ``k`` of ``probes.json``'s ``top_features`` for probe ``name``."""
    probes = probes_json.get("probes") or {}
    if name not in probes:
        raise KeyError(f"no probe {name!r}; have {', '.join(probes) or 'none'}")
    return [int(f) for f, _ in (probes[name].get("top_features") or [])[:k]]
