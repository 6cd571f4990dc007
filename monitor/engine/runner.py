"""Forward-pass runners used by the decode loop: the lean fast path, or stock TransformerLens.

Both expose ``device``, ``new_cache(batch)``, ``forward(tokens, cache, stop_at_layer=None,
rows=None) -> resid`` and ``logits(resid)``; the decode loop
(:class:`monitor.engine.batch.BatchDecoder`) does not care which one it drives. The fast
runner holds any number of cache rows; the stock runner holds one (it runs generations one
at a time, for architectures or hooks the fast path does not cover).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from monitor.engine.fastpath import FastForward, fast_path_supported
from monitor.engine.weights import WeightFormat


class RowCache(Protocol):
    lengths: torch.Tensor
    """Tokens cached per row."""

    def reset_row(self, row: int) -> None: ...
    def move_row(self, src: int, dst: int) -> None: ...
    def swap_rows(self, a: int, b: int) -> None: ...


class Runner(Protocol):
    device: torch.device

    def new_cache(self, batch: int = 1) -> RowCache: ...
    def forward(self, tokens: torch.Tensor, cache: Any, stop_at_layer: int | None = None,
                rows: slice | None = None) -> torch.Tensor: ...
    def logits(self, resid: torch.Tensor) -> torch.Tensor: ...


class _StockCache:
    """TransformerLens' KV cache for one row, with the row bookkeeping the loop expects."""

    def __init__(self, model: Any):
        self.model = model
        self.lengths = torch.zeros(1, dtype=torch.long)
        self.tl = self._fresh()

    def _fresh(self) -> Any:
        return TransformerLensKeyValueCache.init_cache(self.model.cfg, self.model.cfg.device, 1)

    def reset_row(self, row: int) -> None:
        self._only(row)
        self.tl = self._fresh()
        self.lengths[0] = 0

    def move_row(self, src: int, dst: int) -> None:
        self._only(src, dst)

    def swap_rows(self, a: int, b: int) -> None:
        self._only(a, b)

    @staticmethod
    def _only(*rows: int) -> None:
        if any(r != 0 for r in rows):
            raise RuntimeError("the stock runner holds one sequence (row 0)")


class StockRunner:
    """TransformerLens' own forward with its KV cache (any architecture, any hook), one
    sequence at a time."""

    def __init__(self, model: Any):
        self.model = model
        self.device = torch.device(model.cfg.device)

    def new_cache(self, batch: int = 1) -> _StockCache:
        if batch != 1:
            raise RuntimeError("the stock runner holds one sequence; batching needs the fast path")
        return _StockCache(self.model)

    def forward(self, tokens: torch.Tensor, cache: _StockCache, stop_at_layer: int | None = None,
                rows: slice | None = None) -> Any:
        if rows is not None and (rows.start, rows.stop) != (0, 1):
            raise RuntimeError("the stock runner holds one sequence (row 0)")
        # an explicit all-ones mask: no padding (TL would otherwise need a tokenizer to infer it)
        out = self.model(tokens, past_kv_cache=cache.tl, attention_mask=torch.ones_like(tokens),
                         stop_at_layer=stop_at_layer or self.model.cfg.n_layers)
        cache.lengths[0] += tokens.shape[1]
        return out

    def logits(self, resid: torch.Tensor) -> Any:
        return self.model.unembed(self.model.ln_final(resid))


class FastRunner:
    def __init__(self, model: Any, weights: WeightFormat = "fp32"):
        self.ff = FastForward(model, weights)
        self.device = self.ff.device

    def new_cache(self, batch: int = 1) -> Any:
        return self.ff.new_cache(batch)

    def forward(self, tokens: torch.Tensor, cache: Any, stop_at_layer: int | None = None,
                rows: slice | None = None) -> torch.Tensor:
        return self.ff.forward(tokens, cache, stop_at_layer, rows=rows)

    def logits(self, resid: torch.Tensor) -> torch.Tensor:
        return self.ff.logits(resid)


def select_runner(model: Any, fast: FastRunner | None) -> Runner:
    """``fast`` when given and the model's currently attached hooks allow it, else stock."""
    if fast is not None and fast_path_supported(model):
        return fast
    return StockRunner(model)
