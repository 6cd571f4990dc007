"""Activation patching: which (layer, position) carries the difference between a clean
and a corrupted prompt?

Both prompts must have the same number of tokens. For each layer and each position, the
clean residual (``hook_resid_pre`` or ``hook_resid_post``) is restored into the corrupted
run at that one position, and the metric ``logit[target] - logit[foil]`` at the last
position is compared: ``recovered = (patched - corrupted) / (clean - corrupted)`` (1: that
site alone restores the clean behaviour, 0: no effect). One batched forward per layer
(row ``p`` patches position ``p``), TransformerLens' slow path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from classifiers.interp.attribution import logit_diff

KINDS = ("resid_pre", "resid_post")


@dataclass(frozen=True)
class PatchResult:
    kind: str
    layers: tuple[int, ...]
    tokens: tuple[str, ...]
    clean: float
    corrupted: float
    recovered: Tensor
    """[n_layers, n_pos]."""

    def best(self, n: int = 5) -> list[dict[str, Any]]:
        flat = torch.argsort(self.recovered.flatten(), descending=True)[:n].tolist()
        P = self.recovered.shape[1]
        return [{"layer": self.layers[i // P], "position": i % P, "token": self.tokens[i % P],
                 "recovered": round(float(self.recovered.flatten()[i]), 4)} for i in flat]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "clean_logit_diff": round(self.clean, 4),
                "corrupted_logit_diff": round(self.corrupted, 4), "layers": list(self.layers),
                "tokens": list(self.tokens), "best": self.best(),
                "recovered": [[round(float(v), 4) for v in row] for row in self.recovered]}


@torch.no_grad()
def activation_patching(model: Any, clean_ids: Sequence[int], corrupted_ids: Sequence[int], target: int, foil: int,
                        layers: Sequence[int] | None = None, kind: str = "resid_pre",
                        token_text: Sequence[str] = ()) -> PatchResult:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    if len(clean_ids) != len(corrupted_ids):
        raise ValueError(f"clean and corrupted prompts must have the same length "
                         f"({len(clean_ids)} vs {len(corrupted_ids)} tokens)")
    layers = list(range(model.cfg.n_layers)) if layers is None else list(layers)
    dev = model.cfg.device
    clean = torch.tensor([list(clean_ids)], device=dev)
    corr = torch.tensor([list(corrupted_ids)], device=dev)
    names = [f"blocks.{L}.hook_{kind}" for L in layers]
    clean_logits, cache = model.run_with_cache(clean, names_filter=names)
    ld_clean = float(logit_diff(clean_logits, target, foil)[0])
    ld_corr = float(logit_diff(model(corr), target, foil)[0])
    denom = ld_clean - ld_corr
    P = clean.shape[1]
    batch = corr.expand(P, P).contiguous()
    rows = torch.arange(P)
    out = torch.zeros(len(layers), P)
    for i, name in enumerate(names):
        src = cache[name][0]

        def patch(x: Tensor, hook: Any = None, src: Tensor = src) -> Tensor:  # noqa: ARG001
            x = x.clone()
            x[rows, rows] = src[rows]
            return x

        ld = logit_diff(model.run_with_hooks(batch, fwd_hooks=[(name, patch)]), target, foil)
        out[i] = (ld.float().cpu() - ld_corr) / (denom if abs(denom) > 1e-9 else float("nan"))
    toks = tuple(token_text) if token_text else tuple(str(t) for t in clean_ids)
    return PatchResult(kind, tuple(layers), toks, ld_clean, ld_corr, out)
