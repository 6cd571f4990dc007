"""Which positions count: the one rule for every place that reads, trains on, scores or
changes residual rows (the guard, SAE caching and evaluation, the interpretability
searches, interventions).

A position is *monitorable* unless it is

1. absolute position 0: the attention sink (at layer 15 of SmolLM2 its residual norm is
   ~25,000 against ~170 elsewhere);
2. before ``from_pos`` (e.g. the chat template's system prompt, when only the content
   counts);
3. padding (at or after a row's length in a right-padded batch);
4. a special token (``<|im_start|>``, ``<|im_end|>`` ...);
5. *sink-like*: its residual norm exceeds ``OUTLIER_NORM_FACTOR`` x a reference norm, the
   median over the rows rules 1-4 keep (or a reference the caller carries over, e.g. a
   request's first chunk, so that a one-row decode step is judged like its prompt). Some
   positions besides 0 (long runs of spaces) reach ~150x the usual norm.

The SAE is trained without such rows, so they are never encoded, scored or changed.
Prompt vs response is not this rule's business: it decides *whether* a row counts; the
guard's ``scope_of`` decides which scope a counted row belongs to.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import torch
from torch import Tensor

OUTLIER_NORM_FACTOR = 10.0
"""Rows whose residual norm exceeds this multiple of the reference norm are sink-like."""


class Positions(NamedTuple):
    """The result of :func:`monitorable`."""

    mask: Tensor
    """Bool, the shape of ``token_ids``: True where the position counts."""
    ref_norm: float | None
    """The reference norm used for the sink-like rule (None: not applied or nothing kept);
    carry it to the next call of the same sequence."""


def sink_like(resid: Tensor, keep: Tensor | None = None, ref_norm: float | None = None,
              factor: float = OUTLIER_NORM_FACTOR) -> Positions:
    """Rule 5 alone: ``mask`` is True for sink-like rows of ``resid`` [..., d] (only
    among ``keep`` when given); the reference is ``ref_norm`` or the median norm of the
    kept rows."""
    norms = resid.float().norm(dim=-1)
    kept = norms if keep is None else norms[keep]
    if ref_norm is None:
        if kept.numel() == 0:
            return Positions(torch.zeros_like(norms, dtype=torch.bool), None)
        ref_norm = float(kept.flatten().median())
    bad = norms > factor * ref_norm
    return Positions(bad if keep is None else bad & keep, ref_norm)


def monitorable(
    token_ids: Tensor,
    *,
    start_pos: int = 0,
    from_pos: int = 0,
    special_ids: Iterable[int] = (),
    lengths: Tensor | None = None,
    resid: Tensor | None = None,
    ref_norm: float | None = None,
    skip_sink: bool = True,
) -> Positions:
    """The positions of ``token_ids`` [..., pos] that count (see the module doc).

    ``start_pos``: absolute position of column 0 (a decode step or a prompt chunk starts
    later). ``lengths`` [batch]: real lengths of right-padded rows. ``resid`` [..., pos, d]:
    the residual at the hook, for the sink-like rule (skipped when None). ``skip_sink=False``
    keeps position 0 and sink-like rows (an intervention told to touch them).
    """
    n = token_ids.shape[-1]
    absolute = torch.arange(start_pos, start_pos + n, device=token_ids.device)
    mask = (absolute >= from_pos).expand(token_ids.shape).clone()
    if skip_sink:
        mask &= absolute != 0
    if lengths is not None:
        mask &= torch.arange(n, device=token_ids.device) < lengths.to(token_ids.device)[:, None]
    specials = [int(t) for t in special_ids]
    if specials:
        mask &= ~torch.isin(token_ids, torch.tensor(specials, device=token_ids.device))
    if resid is None or not skip_sink:
        return Positions(mask, ref_norm)
    bad, ref = sink_like(resid, mask, ref_norm)
    return Positions(mask & ~bad, ref)
