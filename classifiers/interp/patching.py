"""Activation patching: which (layer, position) carries the difference between a clean
and a corrupted prompt?

Both prompts must have the same number of tokens. For each layer and each position, the
clean residual (``hook_resid_pre`` or ``hook_resid_post``) is restored into the corrupted
run at that one position, and the metric ``logit[target] - logit[foil]`` at the last
position is compared: ``recovered = (patched - corrupted) / (clean - corrupted)`` (1: that
site alone restores the clean behaviour, 0: no effect). One batched forward per layer
(row ``p`` patches position ``p``), TransformerLens' slow path. To explain why a probe
fires, the metric can instead be the probe's logit at the last position, read at the
SAE's hook (:func:`probe_metric`; patch layers before the hook).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from classifiers.interp.attribution import logit_diff
from classifiers.interp.runtime import hook_layer
from monitor.engine.hooks import run_with_hooks

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
        return {"kind": self.kind, "clean_metric": round(self.clean, 4),
                "corrupted_metric": round(self.corrupted, 4), "layers": list(self.layers),
                "tokens": list(self.tokens), "best": self.best(),
                "recovered": [[round(float(v), 4) for v in row] for row in self.recovered]}


Metric = Callable[[Tensor, list[tuple[str, Any]]], Tensor]
"""``metric(tokens [batch, pos], fwd_hooks) -> [batch]``: runs the model with the hooks."""


def logit_diff_metric(model: Any, target: int, foil: int) -> Metric:
    """``logit[target] - logit[foil]`` at the last position."""

    def metric(tokens: Tensor, hooks: list[tuple[str, Any]]) -> Tensor:
        return logit_diff(run_with_hooks(model, tokens, fwd_hooks=hooks), target, foil)

    return metric


def probe_metric(model: Any, sae: Any, hook_name: str, w: Tensor, b: float) -> Metric:
    """A probe's logit ``z @ w[:d_sae] + b`` at the last position, read at the SAE's hook
    (the forward stops there): where does what makes the probe fire come from?"""
    layer = hook_layer(hook_name)

    def metric(tokens: Tensor, hooks: list[tuple[str, Any]]) -> Tensor:
        box: dict[str, Tensor] = {}

        def grab(x: Tensor, hook: Any = None) -> Tensor:  # noqa: ARG001 - TransformerLens signature
            box["x"] = x[:, -1]
            return x

        run_with_hooks(model, tokens, fwd_hooks=[*hooks, (hook_name, grab)], stop_at_layer=layer + 1)
        z = sae.encode(box["x"].float())
        out: Tensor = z @ w[: z.shape[-1]].to(z.device) + b
        return out

    return metric


@torch.no_grad()
def activation_patching(model: Any, clean_ids: Sequence[int], corrupted_ids: Sequence[int], target: int = 0,
                        foil: int = 0, layers: Sequence[int] | None = None, kind: str = "resid_pre",
                        token_text: Sequence[str] = (), metric: Metric | None = None) -> PatchResult:
    """Patch every (layer, position); ``metric`` defaults to the target-vs-foil logit
    difference (see :func:`probe_metric` for a probe's logit instead)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    if len(clean_ids) != len(corrupted_ids):
        raise ValueError(f"clean and corrupted prompts must have the same length "
                         f"({len(clean_ids)} vs {len(corrupted_ids)} tokens)")
    metric = metric or logit_diff_metric(model, target, foil)
    layers = list(range(model.cfg.n_layers)) if layers is None else list(layers)
    dev = model.cfg.device
    clean = torch.tensor([list(clean_ids)], device=dev)
    corr = torch.tensor([list(corrupted_ids)], device=dev)
    names = [f"blocks.{L}.hook_{kind}" for L in layers]
    _, cache = model.run_with_cache(clean, names_filter=names)
    ld_clean = float(metric(clean, [])[0])
    ld_corr = float(metric(corr, [])[0])
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

        ld = metric(batch, [(name, patch)])
        out[i] = (ld.float().cpu() - ld_corr) / (denom if abs(denom) > 1e-9 else float("nan"))
    toks = tuple(token_text) if token_text else tuple(str(t) for t in clean_ids)
    return PatchResult(kind, tuple(layers), toks, ld_clean, ld_corr, out)
