"""Logit lens: read the residual stream at every layer through the final norm and the
unembedding, to see what the model "would say" at each depth.

Also two views of a direction (e.g. a probe's ``w @ W_dec``, or a feature's decoder row):
the tokens it promotes when unembedded, and the residual's projection on it layer by layer
(where the direction a probe reads is built up).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class LensLayer:
    layer: str
    top: tuple[tuple[str, float], ...]
    """(token, probability) best first."""
    target_probs: tuple[float, ...]
    projection: float | None

    def to_json(self) -> dict[str, Any]:
        return {"layer": self.layer, "top": [[t, round(p, 4)] for t, p in self.top],
                "target_probs": [round(p, 5) for p in self.target_probs],
                "projection": None if self.projection is None else round(self.projection, 4)}


@dataclass(frozen=True)
class LogitLensResult:
    position: int
    token: str
    targets: tuple[str, ...]
    layers: tuple[LensLayer, ...]
    direction_tokens: tuple[tuple[str, float], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "token": self.token, "targets": list(self.targets),
                "layers": [layer.to_json() for layer in self.layers],
                "direction_tokens": [[t, round(v, 4)] for t, v in self.direction_tokens]}


def _unembed(model: Any, x: Tensor) -> Tensor:
    out: Tensor = model.unembed(model.ln_final(x[None, None]))[0, 0]
    return out


@torch.no_grad()
def logit_lens(model: Any, token_ids: Sequence[int], decode: Callable[[int], str], position: int = -1, k: int = 5,
               targets: Sequence[int] = (), direction: Tensor | None = None) -> LogitLensResult:
    n = model.cfg.n_layers
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{L}.hook_resid_post" for L in range(n)]
    tokens = torch.tensor([list(token_ids)], device=model.cfg.device)
    _, cache = model.run_with_cache(tokens, names_filter=names)
    pos = position if position >= 0 else len(token_ids) + position
    u = None if direction is None else (direction / direction.norm().clamp_min(1e-12)).to(tokens.device)
    out = []
    for i, name in enumerate(names):
        x = cache[name][0, pos]
        probs = torch.softmax(_unembed(model, x).float(), dim=-1)
        top = torch.topk(probs, k)
        out.append(LensLayer("embed" if i == 0 else str(i - 1),
                             tuple((decode(int(t)), float(p)) for p, t in zip(top.values, top.indices, strict=True)),
                             tuple(float(probs[t]) for t in targets), None if u is None else float(x @ u)))
    dir_tokens: tuple[tuple[str, float], ...] = ()
    if u is not None:
        dir_tokens = direction_tokens(model, u, decode, k)
    return LogitLensResult(pos, decode(int(token_ids[pos])), tuple(decode(int(t)) for t in targets), tuple(out),
                           dir_tokens)


@torch.no_grad()
def direction_tokens(model: Any, direction: Tensor, decode: Callable[[int], str], k: int = 10) -> tuple[tuple[str, float], ...]:
    """Tokens whose logits a direction raises most: ``(direction * ln_final.w) @ W_U``."""
    w = getattr(model.ln_final, "w", None)
    d = direction * w if w is not None else direction
    logits = d @ model.unembed.W_U
    top = torch.topk(logits.float(), k)
    return tuple((decode(int(t)), float(v)) for v, t in zip(top.values, top.indices, strict=True))
