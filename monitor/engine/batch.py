"""Continuous batching: several generations share one forward pass per decode step.

Requests join (their prompt is prefilled into a free cache row) and leave (the last row
moves into the freed one, so active rows stay a contiguous prefix) between steps. Each
request keeps its own sampling parameters, seed, stop tokens, taps and stop requests; a
tap callback sees only its own request's rows, and an exception in it is recorded on
that request alone (``on_tap_error`` per request, as in :class:`Generation`).

Only the fast path (Llama-style models) supports batching; greedy tokens per request are
the same as when each runs alone (tested).

**Chunked prefill.** A long prompt that joins while other requests are decoding is not
prefilled in one forward (that would stall every other stream for the whole prompt: 1.95 s
for 1,500 tokens on 2 CPU cores). It waits in :attr:`BatchDecoder.pending`, in a free
cache row, and each :meth:`BatchDecoder.step` runs the decode step for the active rows and
then one chunk of at most ``prefill_chunk`` prompt tokens of the oldest pending request;
after its last chunk the request's first token is sampled in the same step and its row
joins the active prefix. The others' inter-token gap is then one decode step plus one
chunk; the long prompt's own first token comes a few decode steps later than it would
have. With nobody decoding, prompts are prefilled at once as before. Taps see each chunk
as a ``prefill`` call starting at the chunk's position.

**Events carry their own scores.** A request with callbacks (a monitored one) gets each
token's event only after the forward pass over that token, so whatever its callbacks made
of that position has been made: ``BatchRequest.collect`` (when set) is called right after
that forward and its result rides on the event as ``TokenEvent.scores``; what it returns
after the prompt's forward rides on the request's first event as ``prompt_scores``. A
monitored stream therefore lags one decode step behind the sampler (a policy needs the
token's scores before the client sees it); an unmonitored one gets each token as it is
sampled. A token whose forward pass broke the monitor under ``on_tap_error="raise"`` is not
emitted: what was not monitored is not sent.

This is the only decode loop: :class:`monitor.engine.decode.Generation` is a batch of one
on it, and it runs on either runner (:mod:`monitor.engine.runner`; the stock runner holds
one row).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

from monitor.engine.decode import FinishReason, TokenEvent, check_prompt
from monitor.engine.detok import IncrementalDecoder
from monitor.engine.runner import FastRunner, Runner
from monitor.engine.sampling import SamplingParams, choose_next
from monitor.engine.tap import Phase, Tap, TapCall, TapCallback, TapError


@dataclass(eq=False)
class BatchRequest:
    """One request in a batch. ``callbacks`` are (hook name, tap callback) pairs;
    ``collect`` (optional) is called after each forward pass over the request's positions
    and its result rides on the event of the token that pass covered (see the module doc)."""

    request_id: str
    prompt_ids: list[int]
    params: SamplingParams
    callbacks: Sequence[tuple[str, TapCallback]] = ()
    on_tap_error: Literal["raise", "continue"] = "raise"
    collect: Callable[[], Any] | None = None
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
    _row: int = -1
    """Cache row while pending (chunked prefill)."""
    _prefilled: int = 0
    """Prompt tokens already in the cache while pending."""
    _unsent: TokenEvent | None = None
    """A monitored request's sampled token, held until the forward pass over it."""
    _prompt_scores: Any = None
    _sent_any: bool = False

    def stop(self, message: str) -> None:
        if self._stop_requested is None:
            self._stop_requested = message

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    @property
    def monitored(self) -> bool:
        """Callbacks watch this request: its events wait for the forward over their token."""
        return bool(self.callbacks)


#: Prompt tokens per prefill chunk when a long prompt joins a running batch. Measured on 2 CPU
#: cores with a 1,500-token prompt (ops/bench/join_stall.py): the other stream's longest pause
#: 1.95 s -> 0.44 s (a chunk late in the prompt attends to more positions), the joining
#: prompt's first token 1.84 s -> 2.22 s. Smaller chunks shorten the pause and delay that
#: first token further.
PREFILL_CHUNK = 256


class BatchDecoder:
    """Drives up to ``max_batch`` requests; call :meth:`add` and :meth:`step` from one thread."""

    def __init__(self, model: Any, tokenizer: Any, stop_token_ids: Sequence[int] = (), max_batch: int = 8,
                 runner: Runner | None = None, prefill_chunk: int | None = PREFILL_CHUNK):
        self.runner: Runner = runner if runner is not None else FastRunner(model)
        self.model = model
        self.tokenizer = tokenizer
        self.stop_ids = frozenset(int(t) for t in stop_token_ids)
        self.max_batch = max_batch
        self.cache = self.runner.new_cache(batch=max_batch)
        self.prefill_chunk = prefill_chunk
        """Chunk size for long prompts joining a running batch (None: never chunk)."""
        self.active: list[BatchRequest] = []
        """Decoding requests; request ``i`` is cache row ``i``."""
        self.pending: list[BatchRequest] = []
        """Requests whose long prompt is being prefilled chunk by chunk (oldest first)."""
        self._phase: list[Phase] = []
        self._taps: dict[str, Tap] = {}
        self._route: tuple[list[BatchRequest], list[Phase], list[int], list[int]] = ([], [], [], [])

    # -- membership ------------------------------------------------------------------------
    @property
    def held(self) -> list[BatchRequest]:
        """Every request in the batch: active, then pending."""
        return self.active + self.pending

    @property
    def occupied(self) -> int:
        """Rows in use: active plus pending requests."""
        return len(self.active) + len(self.pending)

    @property
    def full(self) -> bool:
        return self.occupied >= self.max_batch

    def holds(self, req: BatchRequest) -> bool:
        """Whether ``req`` is in the batch (decoding or still prefilling)."""
        return req in self.active or req in self.pending

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
        if self.occupied + len(reqs) > self.max_batch:
            raise RuntimeError("batch is full")
        for req in reqs:
            check_prompt(req.prompt_ids, req.params, self.model.cfg.n_ctx)
        if not reqs:
            return {}
        chunk = self.prefill_chunk
        if (self.active or self.pending) and chunk:
            for req in [r for r in reqs if len(r.prompt_ids) > chunk]:
                self._start_pending(req)
            reqs = [r for r in reqs if r not in self.pending]
            if not reqs:
                return {}
        first = len(self.active)
        self._clear_rows(first, first + len(reqs))
        lengths = [len(r.prompt_ids) for r in reqs]
        width = max(lengths)
        for i, req in enumerate(reqs):
            self._prepare(req, first + i)
            self.active.append(req)
        padded = [r.prompt_ids + [r.prompt_ids[-1]] * (width - len(r.prompt_ids)) for r in reqs]
        tokens = torch.tensor(padded, dtype=torch.long, device=self.runner.device)
        rows = slice(first, first + len(reqs))
        resid = self._forward(tokens, list(reqs), rows, ["prefill"] * len(reqs), lengths)
        for i, req in enumerate(reqs):
            self.cache.lengths[first + i] = lengths[i]
            req._logits = self.runner.logits(resid[i : i + 1, lengths[i] - 1 : lengths[i], :])[0, -1]
            self._collect_prompt(req)
        events = self._advance()
        return {r: events.get(r, []) for r in reqs}

    # -- chunked prefill --------------------------------------------------------------------
    def _prepare(self, req: BatchRequest, row: int) -> None:
        """A joining request's empty cache row, sampling generator and detokenizer."""
        self.cache.reset_row(row)
        req._gen = req.params.make_generator(torch.device(self.runner.device))
        req._detok = IncrementalDecoder(self.tokenizer)

    def _start_pending(self, req: BatchRequest) -> None:
        req._row = self._free_row()
        req._prefilled = 0
        self._prepare(req, req._row)
        self.pending.append(req)

    def _free_row(self, exclude: range = range(0)) -> int:
        """The highest row neither active, pending nor in ``exclude``."""
        used = set(range(len(self.active))) | {p._row for p in self.pending} | set(exclude)
        for row in range(self.max_batch - 1, -1, -1):
            if row not in used:
                return row
        raise RuntimeError("batch is full")

    def _clear_rows(self, lo: int, hi: int) -> None:
        """Move pending requests out of rows ``[lo, hi)`` (about to be used by the active prefix)."""
        for p in self.pending:
            if lo <= p._row < hi:
                new = self._free_row(exclude=range(lo, hi))
                self.cache.move_row(p._row, new)
                p._row = new

    def _prefill_next_chunk(self, whole: bool = False) -> BatchRequest | None:
        """One chunk of the oldest pending prompt (all of it with ``whole``); returns the
        request when its prompt is complete (it is then active, with logits to sample)."""
        p = self.pending[0]
        size = len(p.prompt_ids) - p._prefilled if whole or not self.prefill_chunk else self.prefill_chunk
        ids = p.prompt_ids[p._prefilled : p._prefilled + size]
        tokens = torch.tensor([ids], dtype=torch.long, device=self.runner.device)
        resid = self._forward(tokens, [p], slice(p._row, p._row + 1), ["prefill"], [len(ids)])
        p._prefilled += len(ids)
        if p._prefilled < len(p.prompt_ids):
            return None
        self.pending.pop(0)
        dst = len(self.active)
        other = next((q for q in self.pending if q._row == dst), None)
        if other is not None:  # another pending prompt sits where the active prefix grows
            self.cache.swap_rows(p._row, dst)
            other._row = p._row
        else:
            self.cache.move_row(p._row, dst)
        p._row = -1
        self.active.append(p)
        p._logits = self.runner.logits(resid[:, -1:, :])[0, -1]
        self._collect_prompt(p)
        return p

    # -- one decode step -------------------------------------------------------------------
    def step(self) -> dict[BatchRequest, list[TokenEvent]]:
        """One forward for every active request, then one prefill chunk of the oldest
        pending request (its whole remaining prompt when nothing is active); returns new
        events by request (keyed by the request object: two requests may carry the same
        client-chosen request id)."""
        events: dict[BatchRequest, list[TokenEvent]] = {}
        if self.active:
            reqs = list(self.active)
            tokens = torch.tensor([[r.completion_ids[-1]] for r in reqs], device=self.runner.device)
            phases: list[Phase] = ["score" if r.done else "decode" for r in reqs]
            scoring_only = all(r.done for r in reqs)  # no logits needed: stop after the last tapped layer
            resid = self._forward(tokens, reqs, slice(0, len(reqs)), phases,
                                  stop_at_layer=self._tapped_depth(reqs) if scoring_only else None)
            logits = None if scoring_only else self.runner.logits(resid)[:, -1]
            for i, r in enumerate(reqs):
                r._logits = None if r.done or logits is None else logits[i]
            events = self._flush(reqs)
            for r in [r for r in reqs if r.done]:  # their last token is scored now: leave
                self._remove(r)
            for r, evs in self._advance().items():
                events.setdefault(r, []).extend(evs)
        if self.pending and self._prefill_next_chunk(whole=not self.active) is not None:
            for r, evs in self._advance().items():
                events.setdefault(r, []).extend(evs)
        return events

    def _tapped_depth(self, reqs: Sequence[BatchRequest]) -> int | None:
        """Layers every callback of ``reqs`` needs (``blocks.L.*`` -> L + 1); None: all."""
        hooks = {h for r in reqs for h, _ in r.callbacks}
        if not hooks or not all(h.startswith("blocks.") for h in hooks):
            return None
        return max(int(h.split(".")[1]) + 1 for h in hooks)

    def _collect_prompt(self, r: BatchRequest) -> None:
        if r.collect is not None:
            r._prompt_scores = r.collect()

    def _flush(self, reqs: Sequence[BatchRequest]) -> dict[BatchRequest, list[TokenEvent]]:
        """After a forward over ``reqs``' held tokens: emit each with what ``collect`` made of it."""
        out: dict[BatchRequest, list[TokenEvent]] = {}
        for r in reqs:
            ev, r._unsent = r._unsent, None
            if ev is None:
                continue
            if r.error is not None:  # the monitor broke on this token: it is not sent
                if r.done:  # a length-final token: the stream ends with the error instead
                    r.finish_reason = "monitor_error"
                    out[r] = [self._emit(r, self._final(r, -1, -1, ""))]
                continue
            scores = r.collect() if r.collect is not None else None
            out[r] = [self._emit(r, replace(ev, scores=scores))]
        return out

    def _emit(self, r: BatchRequest, ev: TokenEvent) -> TokenEvent:
        if not r._sent_any:
            r._sent_any = True
            if r._prompt_scores is not None:
                ev = replace(ev, prompt_scores=r._prompt_scores)
                r._prompt_scores = None
        return ev

    def _advance(self) -> dict[BatchRequest, list[TokenEvent]]:
        """Sample for every request that has fresh logits; drop finished ones. A monitored
        request's new token is held for the next forward (:meth:`_flush`); a final event
        without a token is emitted now."""
        out: dict[BatchRequest, list[TokenEvent]] = {}
        for r in list(self.active):
            if r._logits is None:
                continue
            ev = self._sample(r)
            if r.monitored and ev.index >= 0:
                r._unsent = ev
            else:
                out.setdefault(r, []).append(self._emit(r, ev))
            if r.done and (r.finish_reason != "length" or not r.monitored):
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
        elif r in self.pending:
            self.pending.remove(r)
            self.cache.reset_row(r._row)
            r._row = -1

    def _remove(self, r: BatchRequest) -> None:
        row = self.active.index(r)
        last = len(self.active) - 1
        self.cache.move_row(last, row)
        self.active[row] = self.active[last]
        self.active.pop()
        self.cache.reset_row(last)

    # -- taps ------------------------------------------------------------------------------
    def _forward(self, tokens: torch.Tensor, reqs: list[BatchRequest], rows: slice, phases: list[Phase],
                 valid: list[int] | None = None, stop_at_layer: int | None = None) -> torch.Tensor:
        """One forward of ``reqs`` (in cache ``rows``); ``valid`` = real (unpadded) positions per row."""
        hooks = {h for r in reqs for h, _ in r.callbacks}
        taps = [self._tap(h) for h in hooks]
        starts = [int(self.cache.lengths[i]) for i in range(rows.start, rows.stop)]
        for tap in taps:
            tap.set_call(TapCall(tap.hook_name, phases[0], starts[0], tokens, tuple(r.request_id for r in reqs)))
        widths = valid if valid is not None else [tokens.shape[1]] * tokens.shape[0]
        self._route = (reqs, phases, starts, widths)
        try:
            with _attached(taps):
                resid = self.runner.forward(tokens, self.cache, stop_at_layer, rows=rows)
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
        reqs, phases, starts, widths = self._route
        out = x
        changed = False
        batch = x if x.shape[1] == 1 else None  # a decode step: callbacks may share per-row work
        for j, r in enumerate(reqs):
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
