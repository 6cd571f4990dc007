"""Nearest features by decoder-direction cosine (the feature itself always comes first)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from classifiers.interp.evidence import FeatureEvidence, feature_evidence


@dataclass(frozen=True)
class Neighbour:
    id: int
    cosine: float
    evidence: FeatureEvidence

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "cosine": round(self.cosine, 4), "evidence": self.evidence.to_json()}


def decoder_cosines(W_dec: Tensor, fid: int) -> Tensor:
    """[d_sae] cosine of every decoder row with row ``fid``."""
    W = W_dec.detach().float()
    if not 0 <= fid < W.shape[0]:
        raise ValueError(f"feature id {fid} out of range (0..{W.shape[0] - 1})")
    unit = W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos: Tensor = unit @ unit[fid]
    return cos


def neighbours(W_dec: Tensor, fid: int, features: Mapping[str, Any] | None = None, k: int = 10) -> list[Neighbour]:
    """``k`` entries: ``fid`` itself (cosine 1), then the ``k-1`` most similar others."""
    cos = decoder_cosines(W_dec, fid)
    others = cos.clone()
    others[fid] = float("-inf")
    order = torch.argsort(others, descending=True)[: max(k - 1, 0)].tolist()
    out = [Neighbour(fid, float(cos[fid]), feature_evidence(features, fid))]
    out += [Neighbour(int(f), float(cos[f]), feature_evidence(features, int(f))) for f in order]
    return out


def cluster_by_decoder(W_dec: Tensor, ids: list[int], threshold: float = 0.3) -> list[list[int]]:
    """Greedy single-link clusters of ``ids`` whose decoder cosine exceeds ``threshold``."""
    W = W_dec.detach().float()[ids]
    unit = W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)
    sim = unit @ unit.T
    parent = list(range(len(ids)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            if float(sim[i, j]) > threshold:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i, f in enumerate(ids):
        groups.setdefault(find(i), []).append(f)
    return list(groups.values())
