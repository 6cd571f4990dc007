"""All of a pack's probes as one matrix: ``scores = sigmoid(z @ W + x @ W_resid + b)``.

``z`` are the SAE codes of a position and ``x`` the residual they encode (the same hook).
An SAE probe reads ``z`` (its ``W_resid`` column is zero); a dense probe reads ``x`` (its
``W`` column is zero). Both are explained in SAE features: feature ``f`` moves a probe's
logit by ``z_f * W_eff[f]`` with ``W_eff = W + W_dec @ W_resid`` (for a dense probe, the
part of ``w . x`` carried by the feature's decoder direction; the SAE's bias and error
term carry the rest and are not features).
"""

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
    """[d_sae, n_probes] float32: weights over the SAE codes."""
    b: Tensor
    """[n_probes]."""
    labels: Mapping[int, str]
    """Feature id -> human label from ``features.json`` (may be empty)."""
    W_resid: Tensor | None = None
    """[d_model, n_probes] weights over the raw residual (dense probes), or None."""
    W_eff: Tensor | None = None
    """[d_sae, n_probes] each feature's effect on each logit per unit of activation
    (``W + W_dec @ W_resid``); None means ``W`` (no dense probe)."""

    @classmethod
    def from_probes(cls, probes: ProbeSet, features: Mapping[str, Any] | None = None,
                    device: str | torch.device = "cpu", W_dec: Tensor | None = None) -> ProbeBank:
        """From the pack's :class:`~monitor.pack.probes_file.ProbeSet` (column order kept).
        ``W_dec`` [d_sae, d_model] (the pack's SAE decoder) is needed when a probe is dense:
        it is what explains a dense verdict in features."""
        W = torch.stack([torch.as_tensor(r.weights, dtype=torch.float32) for r in probes.probes], dim=1).to(device)
        b = torch.tensor([float(r.bias) for r in probes.probes], dtype=torch.float32).to(device)
        stacked = probes.W_resid
        W_resid = W_eff = None
        if stacked is not None:
            if W_dec is None:
                raise ValueError("dense probes need the SAE decoder (W_dec) to be explained in features")
            if stacked.shape[0] != W_dec.shape[1]:
                raise ValueError(f"dense probes read a {stacked.shape[0]}-dim residual but the SAE "
                                 f"decodes to {W_dec.shape[1]} dims")
            W_resid = torch.as_tensor(stacked, dtype=torch.float32).to(device)
            W_eff = W + W_dec.detach().to(device, torch.float32) @ W_resid
        return cls(
            names=tuple(r.name for r in probes.probes), concepts=tuple(r.concept for r in probes.probes),
            W=W, b=b, labels=feature_labels(features or {}), W_resid=W_resid, W_eff=W_eff,
        )

    @classmethod
    def empty(cls, d_sae: int, device: str | torch.device = "cpu") -> ProbeBank:
        return cls((), (), torch.zeros(d_sae, 0, device=device), torch.zeros(0, device=device), {})

    def score(self, z: Tensor, x: Tensor | None = None) -> Tensor:
        """[..., d_sae] codes (and [..., d_model] residuals, needed by dense probes) ->
        [..., n_probes] probabilities."""
        logits = z @ self.W + self.b
        if self.W_resid is not None:
            if x is None:
                raise ValueError("this pack has dense probes: score(z, x) needs the residual x")
            logits = logits + x.to(self.W_resid.dtype) @ self.W_resid
        out: Tensor = torch.sigmoid(logits)
        return out

    def contributions(self, name: str, z_row: Tensor) -> Tensor:
        """[d_sae] how much each active feature moves probe ``name``'s logit at one position."""
        weights = self.W if self.W_eff is None else self.W_eff
        out: Tensor = weights[:, self.names.index(name)] * z_row
        return out

    def direction(self, name: str, W_dec: Tensor) -> Tensor:
        """Unit residual-space direction of a probe: ``normalize(w @ W_dec + w_resid)``."""
        j = self.names.index(name)
        d: Tensor = self.W[:, j] @ W_dec
        if self.W_resid is not None:
            d = d + self.W_resid[:, j]
        unit: Tensor = d / d.norm().clamp_min(1e-12)
        return unit

    def evidence(self, name: str, z_row: Tensor, k: int = 5) -> Sequence[FeatureRef]:
        """The k features pushing probe ``name`` up most at one position (SAE probe:
        ``w[f] * z[f]``; dense probe: ``z[f] * (W_dec[f] . w)``)."""
        contrib = self.contributions(name, z_row)
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
