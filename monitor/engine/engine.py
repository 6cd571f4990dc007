"""``Engine``: a loaded model ready to stream generations."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from monitor.engine.batch import PREFILL_CHUNK, BatchDecoder, BatchRequest
from monitor.engine.chat import render_chat
from monitor.engine.decode import Generation, new_request
from monitor.engine.fastpath import FastForward, fast_path_supported
from monitor.engine.runner import FastRunner, select_runner
from monitor.engine.sampling import SamplingParams
from monitor.engine.tap import Tap, TapCallback
from monitor.engine.weights import WeightFormat, WeightFormatError


class Engine:
    """Owns the model, tokenizer and the fast runner (built once)."""

    def __init__(self, model: Any, tokenizer: Any, stop_token_ids: Sequence[int] = (), fast: bool = True,
                 weights: WeightFormat = "fp32"):
        self.model = model
        self.tokenizer = tokenizer
        self.stop_token_ids = tuple(stop_token_ids)
        if weights != "fp32" and not (fast and fast_path_supported(model)):
            raise WeightFormatError(f"weight format {weights!r} needs the fast path (a Llama-style model)")
        self._fast = FastRunner(model, weights) if fast and fast_path_supported(model) else None
        self.weights: WeightFormat = weights
        """The fast path's weight format (:mod:`monitor.engine.weights`); a forward that falls
        back to TransformerLens (a hook outside the residual stream) runs the fp32 parameters."""

    @classmethod
    def from_loaded(cls, lm: Any, fast: bool = True, weights: WeightFormat = "fp32") -> Engine:
        return cls(lm.model, lm.tokenizer, lm.stop_token_ids, fast=fast, weights=weights)

    @property
    def n_ctx(self) -> int:
        return int(self.model.cfg.n_ctx)

    @property
    def supports_batching(self) -> bool:
        """Continuous batching needs the fast path (Llama-style models)."""
        return self._fast is not None

    def batch_decoder(self, max_batch: int, prefill_chunk: int | None = PREFILL_CHUNK) -> BatchDecoder:
        """A :class:`BatchDecoder` sharing this engine's fast forward (no weight copies);
        ``prefill_chunk`` None or 0: long prompts are never prefilled in chunks."""
        if self._fast is None:
            raise RuntimeError("continuous batching needs the fast path (a Llama-style model)")
        return BatchDecoder(self.model, self.tokenizer, self.stop_token_ids, max_batch=max_batch, runner=self._fast,
                            prefill_chunk=prefill_chunk or None)

    @property
    def fast_forward(self) -> FastForward | None:
        """The fast path's forward (None without one), for tools that drive it directly."""
        return self._fast.ff if self._fast is not None else None

    def render(self, messages: Sequence[Mapping[str, Any]]) -> list[int]:
        return render_chat(self.tokenizer, messages)

    def generation(
        self,
        prompt_ids: Sequence[int],
        params: SamplingParams,
        taps: Sequence[Tap] = (),
        request_id: str = "",
        on_tap_error: Literal["raise", "continue"] = "raise",
        callbacks: Sequence[tuple[str, TapCallback]] = (),
        collect: Callable[[], Any] | None = None,
    ) -> Generation:
        """A new streaming generation (iterate it): a batch of one on the decode loop, on
        the fast path unless a hook it does not call is attached to the model."""
        return self.generation_of(new_request(prompt_ids, params, taps=taps, request_id=request_id,
                                              on_tap_error=on_tap_error, callbacks=callbacks, collect=collect))

    def generation_of(self, request: BatchRequest) -> Generation:
        """The generation of a request built elsewhere (:func:`~monitor.engine.decode.new_request`,
        or a scheduler's :class:`~monitor.engine.batch.BatchRequest`)."""
        return Generation(select_runner(self.model, self._fast), self.model, self.tokenizer, request,
                          stop_token_ids=self.stop_token_ids)
