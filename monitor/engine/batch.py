"""Continuous batching: several generations share one forward pass per decode step.

Requests join (their prompt is prefilled into a free cache row) and leave (the last row
moves into the freed one, so active rows stay a contiguous prefix) between steps. Each
request keeps its own sampling parameters, seed, stop tokens, taps and stop requests; a
tap callback sees only its own request's rows, and an exception in it is recorded on
that request alone (``on_tap_error`` per request, as in :class:`Generation`).

Only the fast path (Llama-style models) supports batching; greedy tokens per request are
the same as when each runs alone (tested).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from monitor.engine.decode import FinishReason, PromptTooLongError, TokenEvent
from monitor.engine.detok import IncrementalDecoder
from monitor.engine.fastpath import FastForward
from monitor.engine.sampling import SamplingParams, choose_next
from monitor.engine.tap import Phase, Tap, TapCall, TapCallback, TapError


@dataclass(eq=False)
class BatchRequest:
    """One request in a batch. ``callbacks`` are (hook name, tap callback) pairs."""

    request_id: str
    prompt_ids: list[int]
    params: SamplingParams
    callbacks: Sequence[tuple[str, TapCallback]] = ()
    on_tap_error: Literal["raise", "continue"] = "raise"
    completion_ids: list[int] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    stop_message: str | None = None
    monitor_errors: list[TapError] = field(default_factory=list)
    error: BaseException | None = None
    """Set when the request was ended by a tap error (``on_tap_error="raise"``)."""
    _stop_requested: str | None = None
    _logits: torch.Tensor | None = None
    _gen: torch.Generator | None = None
    _detok: IncrementalDecoder | None = None
    _disabled: bool = False

    def stop(self, message: str) -> None:
        if self._stop_requested is None:
            self._stop_requested = message

    @property
    def done(self) -> bool:
        return self.finish_reason is not None


class BatchDecoder:
    """Drives up to ``max_batch`` requests; call :meth:`add` and :meth:`step` from one thread."""

    def __init__(self, model: Any, tokenizer: Any, stop_token_ids: Sequence[int] = (), max_batch: int = 8,
                 ff: FastForward | None = None):
        self.ff = ff if ff is not None else FastForward(model)
        self.model = model
        self.tokenizer = tokenizer
        self.stop_ids = frozenset(int(t) for t in stop_token_ids)
        self.max_batch = max_batch
        self.cache = self.ff.new_cache(batch=max_batch)
        self.active: list[BatchRequest] = []
        self._phase: list[Phase] = []
        self._taps: dict[str, Tap] = {}
        self._route: tuple[slice, list[Phase], list[int], list[int]] = (slice(0, 0), [], [], [])

    # -- membership ------------------------------------------------------------------------
    @property
    def full(self) -> bool:
        return len(self.active) >= self.max_batch

    def add(self, req: BatchRequest) -> list[TokenEvent]:
        """Prefill ``req`` into a free row; returns its first event(s)."""
        return self.add_many([req]).get(req, [])

    def add_many(self, reqs: Sequence[BatchRequest]) -> dict[BatchRequest, list[TokenEvent]]:
        """Prefill several new requests in ONE forward pass (free rows, prompts padded on
        the right to the longest: causal attention keeps the padding out of every real
        position, and a row's cached length is set to its own prompt, so the padding is
        masked later and overwritten by its first generated tokens). Returns their first
        events. A burst of arrivals costs one prefill instead of one each (8 prompts of
        39 tokens: 280 ms instead of 8 x 68 ms on 2 CPU cores)."""
        if len(self.active) + len(reqs) > self.max_batch:
            raise RuntimeError("batch is full")
        for req in reqs:
            if not req.prompt_ids:
                raise ValueError("empty prompt")
            if len(req.prompt_ids) + req.params.max_tokens > self.model.cfg.n_ctx:
                raise PromptTooLongError(
                    f"prompt is {len(req.prompt_ids)} tokens and max_tokens is {req.params.max_tokens}; "
                    f"together they exceed the context of {self.model.cfg.n_ctx} tokens")
        if not reqs:
            return {}
        first = len(self.active)
        lengths = [len(r.prompt_ids) for r in reqs]
        width = max(lengths)
        for i, req in enumerate(reqs):
            self.cache.reset_row(first + i)
            req._gen = req.params.make_generator(torch.device(self.ff.device))
            req._detok = IncrementalDecoder(self.tokenizer)
            self.active.append(req)
        padded = [r.prompt_ids + [r.prompt_ids[-1]] * (width - len(r.prompt_ids)) for r in reqs]
        tokens = torch.tensor(padded, dtype=torch.long, device=self.ff.device)
        rows = slice(first, first + len(reqs))
        resid = self._forward(tokens, rows, ["prefill"] * len(reqs), lengths)
        for i, req in enumerate(reqs):
            self.cache.lengths[first + i] = lengths[i]
            req._logits = self.ff.logits(resid[i : i + 1, lengths[i] - 1 : lengths[i], :])[0, -1]
        events = self._advance()
        return {r: events.get(r, []) for r in reqs}

    # -- one decode step -------------------------------------------------------------------
    def step(self) -> dict[BatchRequest, list[TokenEvent]]:
        """One forward for every active request; returns new events by request (keyed by
        the request object: two requests may carry the same client-chosen request id)."""
        if not self.active:
            return {}
        tokens = torch.tensor([[r.completion_ids[-1]] for r in self.active], device=self.ff.device)
        phases: list[Phase] = ["score" if r.done else "decode" for r in self.active]
        resid = self._forward(tokens, slice(0, len(self.active)), phases)
        logits = self.ff.logits(resid)[:, -1]
        for i, r in enumerate(self.active):
            r._logits = None if r.done else logits[i]
        for r in [r for r in self.active if r.done]:  # their last token is scored now: leave
            self._remove(r)
        return self._advance()

    def _advance(self) -> dict[BatchRequest, list[TokenEvent]]:
        """Sample for every request that has fresh logits; drop finished ones."""
        out: dict[BatchRequest, list[TokenEvent]] = {}
        for r in list(self.active):
            if r._logits is None:
                continue
            ev = self._sample(r)
            out.setdefault(r, []).append(ev)
            if r.done and (r.finish_reason != "length" or not r.callbacks):
                self._remove(r)
        return out

    def _sample(self, r: BatchRequest) -> TokenEvent:
        logits, r._logits = r._logits, None
        assert logits is not None and r._detok is not None
        if r.error is not None:
            r.finish_reason = "monitor_error"
            return self._final(r, -1, -1, "")
        if r._stop_requested is not None:
            r.finish_reason, r.stop_message = "policy_stop", r._stop_requested
            return self._final(r, -1, -1, "")
        next_id = int(choose_next(logits[None], r.params, r._gen)[0])
        if next_id in self.stop_ids:
            r.finish_reason = "stop"
            return self._final(r, -1, -1, "")
        r.completion_ids.append(next_id)
        text = r._detok.push(next_id)
        index = len(r.completion_ids) - 1
        if len(r.completion_ids) >= r.params.max_tokens:
            r.finish_reason = "length"  # stays one more step when taps must score it
            return self._final(r, index, next_id, text)
        return TokenEvent(index=index, token_id=next_id, text=text)

    @staticmethod
    def _final(r: BatchRequest, index: int, token_id: int, text: str) -> TokenEvent:
        return TokenEvent(index=index, token_id=token_id, text=text, finish_reason=r.finish_reason,
                          stop_message=r.stop_message, monitor_errors=tuple(str(e) for e in r.monitor_errors))

    def remove(self, r: BatchRequest) -> None:
        """Take ``r`` out of the batch now (its client went away); call between steps."""
        if r in self.active:
            self._remove(r)

    def _remove(self, r: BatchRequest) -> None:
        row = self.active.index(r)
        last = len(self.active) - 1
        self.cache.move_row(last, row)
        self.active[row] = self.active[last]
        self.active.pop()
        self.cache.reset_row(last)

    # -- taps ------------------------------------------------------------------------------
    def _forward(self, tokens: torch.Tensor, rows: slice, phases: list[Phase],
                 valid: list[int] | None = None) -> torch.Tensor:
        """One forward over ``rows``; ``valid`` = real (unpadded) positions per row."""
        hooks = {h for r in self.active[rows] for h, _ in r.callbacks}
        taps = [self._tap(h) for h in hooks]
        starts = [int(self.cache.lengths[i]) for i in range(rows.start, rows.stop)]
        for tap in taps:
            tap.set_call(TapCall(tap.hook_name, phases[0], starts[0], tokens, tuple(
                r.request_id for r in self.active[rows])))
        widths = valid if valid is not None else [tokens.shape[1]] * tokens.shape[0]
        self._route = (rows, phases, starts, widths)
        try:
            with _attached(taps):
                resid = self.ff.forward(tokens, self.cache, rows=rows)
        finally:
            for tap in taps:
                tap.set_call(None)
        for tap in taps:
            errs = tap.take_errors()
            if errs:  # the router itself failed (per-request errors are caught inside it)
                raise errs[0]
        return resid

    def _tap(self, hook: str) -> Tap:
        tap = self._taps.get(hook)
        if tap is None:
            tap = self._taps[hook] = Tap(self.model, hook, functools.partial(self._router, hook))
        return tap

    def _router(self, hook: str, x: torch.Tensor, call: TapCall) -> torch.Tensor | None:
        rows, phases, starts, widths = self._route
        out = x
        changed = False
        batch = x if x.shape[1] == 1 else None  # a decode step: callbacks may share per-row work
        for j, r in enumerate(self.active[rows]):
            if r._disabled:
                continue
            n = widths[j]  # the row's real positions (a batched prefill pads on the right)
            sub_call = TapCall(hook, phases[j], starts[j], call.token_ids[j : j + 1, :n], (r.request_id,),
                               batch=batch, row=j)
            for h, cb in r.callbacks:
                if h != hook:
                    continue
                try:
                    new = cb(out[j : j + 1, :n], sub_call)
                    if new is not None and new.shape != out[j : j + 1, :n].shape:
                        raise ValueError(f"callback returned shape {tuple(new.shape)}")
                except Exception as exc:  # isolated to this request
                    err = TapError(r.request_id, hook, phases[j], starts[j], exc)
                    r.monitor_errors.append(err)
                    r._disabled = True
                    if r.on_tap_error == "raise":
                        r.error = err
                    break
                if new is not None:
                    if not changed:
                        out, changed = x.clone(), True
                    out[j : j + 1, :n] = new
        return out if changed else None


class _attached:
    """Attach several taps for one forward pass (removed in ``finally``)."""

    def __init__(self, taps: list[Tap]):
        self.taps = taps

    def __enter__(self) -> None:
        for t in self.taps:
            t.__enter__()

    def __exit__(self, *exc: object) -> None:
        for t in self.taps:
            t.detach()
