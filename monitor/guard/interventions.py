"""Interventions on a residual, written in SAE feature space. One API for the policy
engine and the interpretability CLI.

All of them preserve the SAE's error term: with a linear decoder
``decode(z) = z @ W_dec + b_dec``, ``clamp`` returns ``x + (z' - z) @ W_dec``, which equals
``decode(z') + (x - decode(z))`` exactly, so whatever the SAE fails to reconstruct is kept.
Only the changed features are touched (a sparse update: ~3 rows of ``W_dec``).
"""

from __future__ import annotations

import torch
from torch import Tensor


def clamp_features(x: Tensor, z: Tensor, W_dec: Tensor, idx: Tensor, values: Tensor) -> Tensor:
    """Set features ``idx`` to ``values`` (broadcast over leading dims) in ``x``.

    x: [..., d_model] residual; z: [..., d_sae] its SAE code; idx: [k] long; values: [k].
    """
    if idx.numel() == 0:
        return x
    delta = values.to(z.dtype) - z[..., idx]
    return x + delta @ W_dec[idx]


def ablate_features(x: Tensor, z: Tensor, W_dec: Tensor, idx: Tensor) -> Tensor:
    """Clamp ``idx`` to 0: removes exactly those features' contribution ``z[f] * W_dec[f]``."""
    return clamp_features(x, z, W_dec, idx, torch.zeros(idx.numel(), dtype=z.dtype, device=z.device))


def steer(x: Tensor, direction: Tensor, strength: float) -> Tensor:
    """Add ``strength * direction`` (e.g. ``W_dec[f]``, or any d_model vector)."""
    return x + strength * direction.to(x.dtype)
