"""Run the model up to the SAE's hook and encode: the shared first step of every search.

Residuals come from ``HookedTransformer.run_with_cache`` (slow path, fine for analysis)
with ``stop_at_layer`` so layers after the hook are skipped. :class:`Encoded` keeps a mask
of the positions that count (:func:`monitor.guard.positions.monitorable`, the rule the
guard and SAE training use): position 0 (the attention sink), special tokens and sink-like
rows are never used for statistics.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from monitor.engine.hooks import run_with_hooks
from monitor.guard.positions import monitorable


@dataclass(frozen=True)
class Encoded:
    """One prompt at the hook."""

    token_ids: tuple[int, ...]
    resid: Tensor
    """[pos, d_model] residual at the hook."""
    z: Tensor
    """[pos, d_sae] SAE code (rows outside :attr:`keep` are zero)."""
    keep: Tensor
    """[pos] bool: positions used for statistics (not 0, not special, not sink-like)."""

    @property
    def kept_z(self) -> Tensor:
        return self.z[self.keep]


def hook_layer(hook_name: str) -> int:
    """``blocks.L.<...>`` -> L."""
    parts = hook_name.split(".")
    if len(parts) < 3 or parts[0] != "blocks" or not parts[1].isdigit():
        raise ValueError(f"expected a hook like 'blocks.15.hook_resid_post', got {hook_name!r}")
    return int(parts[1])


def special_ids_of(tokenizer: Any) -> frozenset[int]:
    return frozenset(int(i) for i in (getattr(tokenizer, "all_special_ids", None) or []))


def keep_mask(token_ids: Sequence[int], special_ids: Iterable[int], resid: Tensor | None = None,
              start: int = 0) -> Tensor:
    """[pos] bool: the positions that count (:func:`monitor.guard.positions.monitorable`:
    not position 0, not special tokens, not before ``start``, and with ``resid`` not
    sink-like rows)."""
    tokens = torch.tensor(list(token_ids), dtype=torch.long)
    if resid is not None:
        tokens = tokens.to(resid.device)
    return monitorable(tokens, from_pos=start, special_ids=special_ids, resid=resid).mask


@torch.no_grad()
def resid_at(model: Any, token_ids: Sequence[int], hook_name: str, before: Sequence[Any] = ()) -> Tensor:
    """[pos, d_model] residual at ``hook_name`` for one prompt. ``before``: TransformerLens
    ``(name, fn)`` hooks run first (e.g. an intervention at the same hook: the residual is
    then read after it)."""
    tokens = torch.tensor([list(token_ids)], dtype=torch.long, device=model.cfg.device)
    box: dict[str, Tensor] = {}

    def capture(x: Tensor, hook: Any = None) -> Tensor:  # noqa: ARG001 - TransformerLens signature
        box["x"] = x.detach()
        return x

    run_with_hooks(model, tokens, fwd_hooks=[*before, (hook_name, capture)], stop_at_layer=hook_layer(hook_name) + 1)
    return box["x"][0].float()


@torch.no_grad()
def encode_prompt(model: Any, sae: Any, hook_name: str, token_ids: Sequence[int],
                  special_ids: Iterable[int] = (), before: Sequence[Any] = (), start: int = 0) -> Encoded:
    """``start``: positions before it are not kept either (e.g. the chat template's system prompt)."""
    resid = resid_at(model, token_ids, hook_name, before)
    keep = keep_mask(token_ids, special_ids, resid, start)
    z = torch.zeros(resid.shape[0], int(sae.cfg.d_sae), device=resid.device)
    if bool(keep.any()):
        z[keep] = sae.encode(resid[keep]).float()
    return Encoded(tuple(int(t) for t in token_ids), resid, z, keep)


def encode_prompts(model: Any, sae: Any, hook_name: str, prompts: Sequence[Sequence[int]],
                   special_ids: Iterable[int] = (), starts: Sequence[int] | None = None) -> list[Encoded]:
    specials = frozenset(special_ids)
    starts = starts if starts is not None else [0] * len(prompts)
    return [encode_prompt(model, sae, hook_name, p, specials, start=s) for p, s in zip(prompts, starts, strict=True)]


def pool(z: Tensor, how: str) -> Tensor:
    """Pool [pos, d_sae] over positions: ``max``, ``mean`` or ``last``."""
    if z.shape[0] == 0:
        return torch.zeros(z.shape[1], device=z.device)
    if how == "max":
        return z.max(dim=0).values
    if how == "mean":
        return z.mean(dim=0)
    if how == "last":
        return z[-1]
    raise ValueError(f"pooling must be max, mean or last; got {how!r}")
