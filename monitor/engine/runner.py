"""Forward-pass runners used by the decode loop: the lean fast path, or stock TransformerLens.

Both expose ``new_cache()``, ``forward(tokens, cache, stop_at_layer=None) -> resid`` and
``logits(resid)``; the decode loop does not care which one it drives.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from monitor.engine.fastpath import FastForward, fast_path_supported
from monitor.engine.weights import WeightFormat


class Runner(Protocol):
    def new_cache(self, batch: int = 1) -> Any: ...
    def forward(self, tokens: torch.Tensor, cache: Any, stop_at_layer: int | None = None) -> torch.Tensor: ...
    def logits(self, resid: torch.Tensor) -> torch.Tensor: ...


class StockRunner:
    """TransformerLens' own forward with its KV cache (any architecture, any hook)."""

    def __init__(self, model: Any):
        self.model = model

    def new_cache(self, batch: int = 1) -> Any:
        return TransformerLensKeyValueCache.init_cache(self.model.cfg, self.model.cfg.device, batch)

    def forward(self, tokens: torch.Tensor, cache: Any, stop_at_layer: int | None = None) -> Any:
        # an explicit all-ones mask: no padding (TL would otherwise need a tokenizer to infer it)
        return self.model(tokens, past_kv_cache=cache, attention_mask=torch.ones_like(tokens),
                          stop_at_layer=stop_at_layer or self.model.cfg.n_layers)

    def logits(self, resid: torch.Tensor) -> Any:
        return self.model.unembed(self.model.ln_final(resid))


class FastRunner:
    def __init__(self, model: Any, weights: WeightFormat = "fp32"):
        self.ff = FastForward(model, weights)

    def new_cache(self, batch: int = 1) -> Any:
        return self.ff.new_cache(batch)

    def forward(self, tokens: torch.Tensor, cache: Any, stop_at_layer: int | None = None) -> torch.Tensor:
        return self.ff.forward(tokens, cache, stop_at_layer)

    def logits(self, resid: torch.Tensor) -> torch.Tensor:
        return self.ff.logits(resid)


def select_runner(model: Any, fast: FastRunner | None) -> Runner:
    """``fast`` when given and the model's currently attached hooks allow it, else stock."""
    if fast is not None and fast_path_supported(model):
        return fast
    return StockRunner(model)
