"""Contrastive feature search: positive vs negative prompt sets.

``delta[f] = mean_pos[f] - mean_neg[f]`` over per-prompt pooled codes (``max`` by
default), with a Welch-style ``t = delta / sqrt(var_pos/n_pos + var_neg/n_neg + eps)`` for
how consistent the difference is. Features are ranked by ``delta`` (``direction="pos"``:
more active on the positives), by ``-delta`` (``"neg"``) or by ``|delta|`` (``"both"``).
For each hit, the token positions where it is largest in the positive prompts, measured
against the negative set's mean, are reported (prompt index, position, token, value), so
one can see *where* the concept lives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from classifiers.interp.evidence import FeatureEvidence, feature_evidence
from classifiers.interp.runtime import Encoded
from classifiers.interp.search_examples import pooled_matrix


@dataclass(frozen=True)
class Position:
    prompt: int
    position: int
    token: str
    delta: float

    def to_json(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "position": self.position, "token": self.token, "delta": round(self.delta, 4)}


@dataclass(frozen=True)
class ContrastHit:
    id: int
    delta: float
    t: float
    mean_pos: float
    mean_neg: float
    positions: tuple[Position, ...]
    evidence: FeatureEvidence

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "delta": round(self.delta, 4), "t": round(self.t, 3),
                "mean_pos": round(self.mean_pos, 4), "mean_neg": round(self.mean_neg, 4),
                "positions": [p.to_json() for p in self.positions], "evidence": self.evidence.to_json()}


def top_positions(encoded: Sequence[Encoded], fid: int, baseline: float, decode: Callable[[int], str],
                  k: int = 3) -> tuple[Position, ...]:
    cands: list[Position] = []
    for i, e in enumerate(encoded):
        vals = e.z[:, fid] - baseline
        vals = torch.where(e.keep, vals, torch.full_like(vals, float("-inf")))
        if not bool(e.keep.any()):
            continue
        j = int(vals.argmax())
        cands.append(Position(i, j, decode(e.token_ids[j]), float(vals[j])))
    cands.sort(key=lambda p: -p.delta)
    return tuple(cands[:k])


def search_contrastive(
    pos: Sequence[Encoded], neg: Sequence[Encoded], features: Mapping[str, Any] | None,
    decode: Callable[[int], str], top: int = 10, pooling: str = "max", direction: str = "pos",
) -> list[ContrastHit]:
    if not pos or not neg:
        raise ValueError("need at least one positive and one negative prompt")
    P, N = pooled_matrix(pos, pooling), pooled_matrix(neg, pooling)
    mp, mn = P.mean(0), N.mean(0)
    delta = mp - mn
    var_p = P.var(0, unbiased=True) if P.shape[0] > 1 else torch.zeros_like(mp)
    var_n = N.var(0, unbiased=True) if N.shape[0] > 1 else torch.zeros_like(mn)
    t = delta / torch.sqrt(var_p / P.shape[0] + var_n / N.shape[0] + 1e-6)
    key = {"pos": delta, "neg": -delta, "both": delta.abs()}.get(direction)
    if key is None:
        raise ValueError(f"direction must be pos, neg or both; got {direction!r}")
    order = torch.argsort(key, descending=True)[:top]
    hits = []
    for f in order.tolist():
        if float(key[f]) <= 0:
            break
        src, base = (pos, float(mn[f])) if float(delta[f]) >= 0 else (neg, float(mp[f]))
        hits.append(ContrastHit(int(f), float(delta[f]), float(t[f]), float(mp[f]), float(mn[f]),
                                top_positions(src, int(f), base, decode), feature_evidence(features, int(f))))
    return hits
