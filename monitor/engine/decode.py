"""One streaming generation: prefill, then one token per step with a KV cache.

``Generation`` is an iterator of :class:`TokenEvent`: a batch of one on the decode loop
(:class:`monitor.engine.batch.BatchDecoder`, the only loop), so a lone generation and a
continuously batched one sample, tap and stop the same way. Tap callbacks (see
:mod:`monitor.engine.tap`) see every new position, prefill included, and may rewrite the
residual; the change affects the logits of that very step, i.e. it takes effect before
the token it influences is emitted. ``Generation.stop(message)`` (called by a policy from
inside a tap callback) ends the stream before the next token is sampled. With callbacks,
each token's event comes after the forward pass over it and carries what ``collect`` made
of it (``TokenEvent.scores``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch

from monitor.engine.sampling import SamplingParams

if TYPE_CHECKING:
    from monitor.engine.batch import BatchRequest
    from monitor.engine.runner import Runner
    from monitor.engine.tap import Tap, TapCallback, TapError

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
    scores: Any = None
    """What the request's ``collect`` returned after the forward pass over this token (a
    monitored request only; None otherwise, and on a final event without a token)."""
    prompt_scores: Any = None
    """On a request's first event only: what ``collect`` returned after the prompt's forward."""


class PromptTooLongError(ValueError):
    """The prompt plus max_tokens does not fit the model's context."""


def check_prompt(prompt_ids: Sequence[int], params: SamplingParams, n_ctx: int) -> None:
    """Refuse an empty prompt, or one that leaves no room for ``max_tokens`` in the context."""
    if not prompt_ids:
        raise ValueError("empty prompt")
    if len(prompt_ids) + params.max_tokens > n_ctx:
        raise PromptTooLongError(
            f"prompt is {len(prompt_ids)} tokens and max_tokens is {params.max_tokens}; "
            f"together they exceed the context of {n_ctx} tokens"
        )


def new_request(
    prompt_ids: Sequence[int],
    params: SamplingParams,
    taps: Sequence[Tap] = (),
    request_id: str = "",
    on_tap_error: Literal["raise", "continue"] = "raise",
    callbacks: Sequence[tuple[str, TapCallback]] = (),
    collect: Callable[[], Any] | None = None,
) -> BatchRequest:
    """The :class:`~monitor.engine.batch.BatchRequest` for a generation: a
    :class:`~monitor.engine.tap.Tap` contributes its hook and callback (the loop scopes its
    own hook to each forward pass, so the tap need not be entered), a callback is a
    ``(hook name, callback)`` pair."""
    from monitor.engine.batch import BatchRequest

    return BatchRequest(request_id, list(prompt_ids), params,
                        callbacks=[(t.hook_name, t.callback) for t in taps] + list(callbacks),
                        on_tap_error=on_tap_error, collect=collect)


class Generation:
    """One streaming generation of ``request`` (:func:`new_request`). Iterate it to get
    :class:`TokenEvent` s.

    ``on_tap_error="raise"``: a failing callback ends the iteration with its
    :class:`~monitor.engine.tap.TapError` (the token it broke on is not yielded);
    ``"continue"``: the generation goes on unmonitored and the error is in
    :attr:`monitor_errors` and on the final event."""

    def __init__(self, runner: Runner, model: Any, tokenizer: Any, request: BatchRequest,
                 stop_token_ids: Sequence[int] = ()):
        from monitor.engine.batch import BatchDecoder

        check_prompt(request.prompt_ids, request.params, model.cfg.n_ctx)
        self.request = request
        self.prompt_ids = request.prompt_ids
        self.params = request.params
        self._decoder = BatchDecoder(model, tokenizer, stop_token_ids, max_batch=1, runner=runner,
                                     prefill_chunk=None)
        self.prefill_s = 0.0
        self.decode_s = 0.0

    # -- what it produced ------------------------------------------------------------------
    @property
    def completion_ids(self) -> list[int]:
        return self.request.completion_ids

    @property
    def finish_reason(self) -> FinishReason | None:
        return self.request.finish_reason

    @property
    def stop_message(self) -> str | None:
        return self.request.stop_message

    @property
    def monitor_errors(self) -> list[TapError]:
        return self.request.monitor_errors

    # -- control from callbacks ------------------------------------------------------------
    def stop(self, message: str) -> None:
        """Request the stream to end before the next token is sampled."""
        self.request.stop(message)

    # -- the loop --------------------------------------------------------------------------
    def __iter__(self) -> Iterator[TokenEvent]:
        with torch.inference_mode():
            yield from self._run()

    def _run(self) -> Iterator[TokenEvent]:
        req, dec = self.request, self._decoder
        t0 = time.perf_counter()
        events = dec.add(req)
        self.prefill_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        try:
            while True:
                for ev in events:
                    if ev.finish_reason == "monitor_error" and req.error is not None:
                        raise req.error
                    yield ev
                if not dec.holds(req):
                    break
                events = dec.step().get(req, [])
        finally:
            self.decode_s = time.perf_counter() - t0
            if dec.holds(req):  # the consumer stopped early
                dec.remove(req)


def generate_stream(runner: Runner, model: Any, tokenizer: Any, prompt_ids: Sequence[int],
                    params: SamplingParams, stop_token_ids: Sequence[int] = (), **kw: Any) -> Iterator[TokenEvent]:
    """Convenience wrapper: ``iter(Generation(..., new_request(prompt_ids, params, **kw)))``."""
    return iter(Generation(runner, model, tokenizer, new_request(prompt_ids, params, **kw), stop_token_ids))
