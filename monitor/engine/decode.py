"""The streaming decode loop: prefill, then one token per step with a KV cache.

``Generation`` is an iterator of :class:`TokenEvent`. Taps attached to the model (see
:mod:`monitor.engine.tap`) see every new position, prefill included, and may rewrite the
residual; the change affects the logits of that very step, i.e. it takes effect before
the token it influences is emitted. ``Generation.stop(message)`` (called by a policy from
inside a tap callback) ends the stream before the next token is emitted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import structlog
import torch

from monitor.engine.detok import IncrementalDecoder
from monitor.engine.runner import Runner
from monitor.engine.sampling import SamplingParams, choose_next
from monitor.engine.tap import Phase, Tap, TapCall, TapError

log = structlog.get_logger(__name__)

FinishReason = Literal["stop", "length", "policy_stop", "monitor_error"]


@dataclass(frozen=True)
class TokenEvent:
    """One generated token (the last event of a stream also has ``finish_reason``)."""

    index: int
    """0-based index of the token in the response (-1 for a final event with no token)."""
    token_id: int
    text: str
    """Newly completed text (may be empty when a character spans several tokens)."""
    finish_reason: FinishReason | None = None
    stop_message: str | None = None
    monitor_errors: tuple[str, ...] = ()


class PromptTooLongError(ValueError):
    """The prompt plus max_tokens does not fit the model's context."""


class Generation:
    """One streaming generation. Iterate it to get :class:`TokenEvent` s."""

    def __init__(
        self,
        runner: Runner,
        model: Any,
        tokenizer: Any,
        prompt_ids: Sequence[int],
        params: SamplingParams,
        stop_token_ids: Sequence[int] = (),
        taps: Sequence[Tap] = (),
        request_id: str = "",
        on_tap_error: Literal["raise", "continue"] = "raise",
        score_last_token: bool = True,
    ):
        n_ctx = model.cfg.n_ctx
        if not prompt_ids:
            raise ValueError("empty prompt")
        if len(prompt_ids) + params.max_tokens > n_ctx:
            raise PromptTooLongError(
                f"prompt is {len(prompt_ids)} tokens and max_tokens is {params.max_tokens}; "
                f"together they exceed the context of {n_ctx} tokens"
            )
        self.runner = runner
        self.model = model
        self.tokenizer = tokenizer
        self.prompt_ids = list(prompt_ids)
        self.params = params
        self.stop_token_ids = frozenset(int(t) for t in stop_token_ids)
        self.taps = tuple(taps)
        self.request_id = request_id
        self.on_tap_error = on_tap_error
        self.score_last_token = score_last_token
        self.completion_ids: list[int] = []
        self.finish_reason: FinishReason | None = None
        self.stop_message: str | None = None
        self.monitor_errors: list[TapError] = []
        self.prefill_s = 0.0
        self.decode_s = 0.0
        self._stop_requested: str | None = None

    # -- control from callbacks ------------------------------------------------------------
    def stop(self, message: str) -> None:
        """Request the stream to end before the next token is emitted."""
        if self._stop_requested is None:
            self._stop_requested = message

    # -- the loop --------------------------------------------------------------------------
    def _forward(self, tokens: torch.Tensor, cache: Any, phase: Phase, start: int,
                 stop_at_layer: int | None = None) -> torch.Tensor:
        for tap in self.taps:
            tap.set_call(TapCall(tap.hook_name, phase, start, tokens, (self.request_id,)))
        try:
            resid = self.runner.forward(tokens, cache, stop_at_layer)
        finally:
            for tap in self.taps:
                tap.set_call(None)
        self._collect_tap_errors()
        if stop_at_layer is not None:
            return resid
        return self.runner.logits(resid[:, -1:, :])[:, -1, :]

    def _collect_tap_errors(self) -> None:
        for tap in self.taps:
            errs = tap.take_errors()
            if not errs:
                continue
            self.monitor_errors.extend(errs)
            if self.on_tap_error == "raise":
                raise errs[0]
            tap.enabled = False  # fail open: continue unmonitored, reported on the stream

    def __iter__(self) -> Iterator[TokenEvent]:
        with torch.inference_mode():
            yield from self._run()

    def _run(self) -> Iterator[TokenEvent]:
        device = self.model.cfg.device
        gen = self.params.make_generator(torch.device(device))
        cache = self.runner.new_cache(1)
        detok = IncrementalDecoder(self.tokenizer)
        tokens = torch.tensor([self.prompt_ids], dtype=torch.long, device=device)
        t0 = time.perf_counter()
        logits = self._forward(tokens, cache, "prefill", 0)
        self.prefill_s = time.perf_counter() - t0
        pos = len(self.prompt_ids)
        t0 = time.perf_counter()
        index = 0
        while True:
            if self._stop_requested is not None:
                self.finish_reason, self.stop_message = "policy_stop", self._stop_requested
                yield self._final(-1, -1, "")
                break
            next_id = int(choose_next(logits, self.params, gen)[0])
            if next_id in self.stop_token_ids:
                self.finish_reason = "stop"
                yield self._final(-1, -1, "")
                break
            self.completion_ids.append(next_id)
            text = detok.push(next_id)
            if index + 1 >= self.params.max_tokens:
                self.finish_reason = "length"
                if self.score_last_token and self.taps:
                    # Let the taps see (score) the last token; its logits are not used.
                    self._forward(torch.tensor([[next_id]], device=device), cache, "score", pos,
                                  stop_at_layer=self._last_tap_layer())
                yield self._final(index, next_id, text)
                break
            yield TokenEvent(index=index, token_id=next_id, text=text)
            logits = self._forward(torch.tensor([[next_id]], device=device), cache, "decode", pos)
            pos += 1
            index += 1
        self.decode_s = time.perf_counter() - t0

    def _last_tap_layer(self) -> int:
        """Layers needed for every tap to see a position (``blocks.L.*`` -> L + 1)."""
        layers = [int(t.hook_name.split(".")[1]) + 1 for t in self.taps if t.hook_name.startswith("blocks.")]
        return max(layers) if len(layers) == len(self.taps) else self.model.cfg.n_layers

    def _final(self, index: int, token_id: int, text: str) -> TokenEvent:
        return TokenEvent(
            index=index, token_id=token_id, text=text, finish_reason=self.finish_reason,
            stop_message=self.stop_message, monitor_errors=tuple(str(e) for e in self.monitor_errors),
        )


def generate_stream(runner: Runner, model: Any, tokenizer: Any, prompt_ids: Sequence[int],
                    params: SamplingParams, **kw: Any) -> Iterator[TokenEvent]:
    """Convenience wrapper: ``iter(Generation(...))``."""
    return iter(Generation(runner, model, tokenizer, prompt_ids, params, **kw))
