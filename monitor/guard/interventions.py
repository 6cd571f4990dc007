"""Interventions on a residual, written in SAE feature space. One API for the policy
engine and the interpretability CLI.

All of them preserve the SAE's error term: with a linear decoder
``decode(z) = z @ W_dec + b_dec``, ``clamp`` returns ``x + (z' - z) @ W_dec``, which equals
``decode(z') + (x - decode(z))`` exactly, so whatever the SAE fails to reconstruct is kept.
Only the changed features are touched (a sparse update: ~3 rows of ``W_dec``).

:class:`FeatureIntervention` bundles clamps, feature steers and a free direction into one
spec object; :func:`intervention_callback` turns it into a tap callback for streaming
generation and :func:`intervention_hook` into a TransformerLens hook for full forwards.
Both touch only the positions that count (:mod:`monitor.guard.positions`: not position 0,
not special tokens, not sink-like rows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from monitor.guard.positions import Positions, monitorable


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


# -- one intervention spec, applied at the right positions --------------------------------


@dataclass(frozen=True)
class FeatureIntervention:
    """What to do to the residual at one hook point, in SAE feature terms.

    Applied in this order at every eligible position: the clamps (error-preserving, one
    sparse update), then ``strength * W_dec[f]`` for every feature steer, then
    ``direction_strength * direction``. Only positions that count are touched
    (:func:`~monitor.guard.positions.monitorable`): position 0 (the attention sink),
    sink-like rows and special tokens are skipped unless told otherwise.
    """

    clamps: tuple[tuple[int, float], ...] = ()
    """(feature id, value) pairs; an ablation is a clamp to 0."""
    steers: tuple[tuple[int, float], ...] = ()
    """(feature id, strength): adds ``strength * W_dec[f]``."""
    direction: Tensor | None = field(default=None, compare=False)
    """Any residual-space direction [d_model] (e.g. a contrastive steering vector)."""
    direction_strength: float = 0.0
    """Multiplier for :attr:`direction`."""
    skip_first: bool = True
    """Leave absolute position 0 (the attention sink) and sink-like rows untouched."""
    skip_special: bool = True
    """Leave special tokens (``<|im_start|>``, ...) untouched."""

    def __post_init__(self) -> None:
        ids = [f for f, _ in self.clamps]
        if len(set(ids)) != len(ids):
            raise ValueError(f"a feature is clamped twice: {sorted(ids)}")
        if self.direction is not None and self.direction.dim() != 1:
            raise ValueError(f"direction must be a 1-d [d_model] vector, got shape {tuple(self.direction.shape)}")

    # -- constructors -----------------------------------------------------------------
    @classmethod
    def clamp(cls, features: Sequence[int], values: float | Sequence[float], **kw: Any) -> FeatureIntervention:
        vals = [float(values)] * len(features) if isinstance(values, (int, float)) else [float(v) for v in values]
        if len(vals) != len(features):
            raise ValueError(f"{len(features)} features but {len(vals)} values")
        return cls(clamps=tuple(zip((int(f) for f in features), vals, strict=True)), **kw)

    @classmethod
    def ablate(cls, features: Sequence[int], **kw: Any) -> FeatureIntervention:
        return cls.clamp(features, 0.0, **kw)

    @classmethod
    def steer_feature(cls, feature: int, strength: float, **kw: Any) -> FeatureIntervention:
        return cls(steers=((int(feature), float(strength)),), **kw)

    @classmethod
    def steer_direction(cls, direction: Tensor, strength: float, **kw: Any) -> FeatureIntervention:
        return cls(direction=direction.detach(), direction_strength=float(strength), **kw)

    # -- properties ---------------------------------------------------------------------
    @property
    def needs_encode(self) -> bool:
        """Clamps need the SAE code ``z``; steering does not."""
        return bool(self.clamps)

    @property
    def is_noop(self) -> bool:
        return not self.clamps and not self.steers and (self.direction is None or self.direction_strength == 0.0)

    def describe(self) -> str:
        parts = [f"clamp:{f}={v:g}" for f, v in self.clamps] + [f"steer:{f}x{s:g}" for f, s in self.steers]
        if self.direction is not None and self.direction_strength:
            parts.append(f"steer:direction x{self.direction_strength:g}")
        return ",".join(parts) or "none"

    # -- application --------------------------------------------------------------------
    def apply_rows(self, x: Tensor, z: Tensor | None, W_dec: Tensor) -> Tensor:
        """Apply to residual rows ``x`` [..., d_model] whose SAE code is ``z`` (needed for clamps)."""
        if self.clamps:
            if z is None:
                raise ValueError("clamping needs the SAE code z")
            idx = torch.tensor([f for f, _ in self.clamps], dtype=torch.long, device=x.device)
            vals = torch.tensor([v for _, v in self.clamps], dtype=z.dtype, device=x.device)
            x = clamp_features(x, z, W_dec, idx, vals)
        for f, s in self.steers:
            x = steer(x, W_dec[f], s)
        if self.direction is not None and self.direction_strength:
            x = steer(x, self.direction.to(x.device), self.direction_strength)
        return x

    def positions(self, x: Tensor, token_ids: Tensor, start_pos: int = 0, special_ids: Iterable[int] = (),
                  ref_norm: float | None = None) -> Positions:
        """The positions of a [batch, pos, d_model] block this intervention touches: the
        ones that count (:func:`~monitor.guard.positions.monitorable`), unless told to
        touch position 0 and sink-like rows (``skip_first=False``) or special tokens."""
        return monitorable(token_ids.to(x.device), start_pos=start_pos,
                           special_ids=special_ids if self.skip_special else (),
                           resid=x, ref_norm=ref_norm, skip_sink=self.skip_first)

    def apply(self, x: Tensor, sae: Any, token_ids: Tensor, start_pos: int = 0,
              special_ids: Iterable[int] = ()) -> Tensor | None:
        """Apply to a [batch, pos, d_model] residual block; None when nothing changes."""
        if self.is_noop:
            return None
        return self.apply_at(x, sae, self.positions(x, token_ids, start_pos, special_ids).mask)

    def apply_at(self, x: Tensor, sae: Any, mask: Tensor) -> Tensor | None:
        """Apply at the ``mask`` [batch, pos] rows of ``x``; None when nothing changes."""
        if self.is_noop or not bool(mask.any()):
            return None
        rows = x[mask]
        z = sae.encode(rows) if self.needs_encode else None
        out = x.clone()
        out[mask] = self.apply_rows(rows, z, sae.W_dec.detach())
        return out


def intervention_callback(sae: Any, spec: FeatureIntervention, special_ids: Iterable[int] = ()
                          ) -> Callable[[Tensor, Any], Tensor | None]:
    """A :class:`monitor.engine.Tap` callback applying ``spec`` to every new position of a
    generation (prefill and decode; the final ``score`` call is left alone)."""
    specials = frozenset(int(t) for t in special_ids)
    ref: list[float | None] = [None]  # the generation's reference norm (its prompt's median)

    def callback(x: Tensor, call: Any) -> Tensor | None:
        if call.phase not in ("prefill", "decode") or spec.is_noop:
            return None
        counted = spec.positions(x, call.token_ids, call.start_pos, specials, ref[0])
        if ref[0] is None:
            ref[0] = counted.ref_norm
        return spec.apply_at(x, sae, counted.mask)

    return callback


def intervention_hook(sae: Any, spec: FeatureIntervention, tokens: Tensor, special_ids: Iterable[int] = ()
                      ) -> Callable[..., Tensor]:
    """A TransformerLens hook function (``run_with_hooks(fwd_hooks=[(name, fn)])``) applying
    ``spec`` to a full-sequence forward over ``tokens`` [batch, pos] (no KV cache)."""
    specials = frozenset(int(t) for t in special_ids)

    def hook_fn(x: Tensor, hook: Any = None) -> Tensor:  # noqa: ARG001 - TransformerLens signature
        out = spec.apply(x, sae, tokens.to(x.device), 0, specials)
        return x if out is None else out

    return hook_fn
