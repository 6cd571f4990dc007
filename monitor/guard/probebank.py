"""All of a pack's probes as one matrix: ``scores = sigmoid(z @ W + b)`` in one matmul."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from monitor.alerts.model import FeatureRef
from monitor.pack.probes_file import ProbeSet


@dataclass(frozen=True)
class ProbeBank:
    names: tuple[str, ...]
    """Probe names in column order (the keys policies use)."""
    concepts: tuple[str, ...]
    W: Tensor
    """[d_sae, n_probes] float32."""
    b: Tensor
    """[n_probes]."""
    labels: Mapping[int, str]
    """Feature id -> human label from ``features.json`` (may be empty)."""

    @classmethod
    def from_probes(cls, probes: ProbeSet, features: Mapping[str, Any] | None = None,
                    device: str | torch.device = "cpu") -> ProbeBank:
        """From the pack's :class:`~monitor.pack.probes_file.ProbeSet` (column order kept)."""
        W = torch.stack([torch.as_tensor(r.weights, dtype=torch.float32) for r in probes.probes], dim=1)
        b = torch.tensor([float(r.bias) for r in probes.probes], dtype=torch.float32)
        return cls(
            names=tuple(r.name for r in probes.probes), concepts=tuple(r.concept for r in probes.probes),
            W=W.to(device), b=b.to(device), labels=feature_labels(features or {}),
        )

    @classmethod
    def empty(cls, d_sae: int, device: str | torch.device = "cpu") -> ProbeBank:
        return cls((), (), torch.zeros(d_sae, 0, device=device), torch.zeros(0, device=device), {})

    def score(self, z: Tensor) -> Tensor:
        """[..., d_sae] -> [..., n_probes] probabilities."""
        out: Tensor = torch.sigmoid(z @ self.W + self.b)
        return out

    def direction(self, name: str, W_dec: Tensor) -> Tensor:
        """Unit residual-space direction of a probe: ``normalize(w @ W_dec)``."""
        w = self.W[:, self.names.index(name)]
        d: Tensor = w @ W_dec
        unit: Tensor = d / d.norm().clamp_min(1e-12)
        return unit

    def evidence(self, name: str, z_row: Tensor, k: int = 5) -> Sequence[FeatureRef]:
        """The k features contributing most (``w[f] * z[f]``) to probe ``name`` at one position."""
        w = self.W[:, self.names.index(name)]
        contrib = w * z_row
        top = torch.topk(contrib, min(k, contrib.numel()))
        return [
            FeatureRef(id=int(i), activation=round(float(z_row[i]), 4), label=self.labels.get(int(i), ""))
            for v, i in zip(top.values.tolist(), top.indices.tolist(), strict=True) if v > 0
        ]


def feature_labels(features: Mapping[str, Any]) -> dict[int, str]:
    out: dict[int, str] = {}
    for fid, info in (features.get("features") or {}).items():
        if isinstance(info, Mapping) and info.get("label"):
            out[int(fid)] = str(info["label"])
    return out
