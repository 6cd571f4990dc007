"""The model work behind each endpoint, run by the scheduler's thread.

:class:`ChatJob` generates with the guard attached (its own :class:`GuardSession`: per-
request windows, clamps and stop) and emits, in order: one :class:`PromptScored`, one
:class:`TokenOut` per generated token, then :class:`Finished` (or :class:`Failed`).
Each token is emitted *after* the forward pass over it, so its item carries that very
token's scores and actions (one token of extra latency, ~50 ms on a CPU).

:class:`ScoreJob` runs one prefill forward over a finished transcript, monitor-only
(``intervene=False``), and emits :class:`Scored`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from monitor.alerts.model import Alert
from monitor.alerts.safelog import safe_log
from monitor.engine import Engine, SamplingParams, Tap, TapCall
from monitor.engine.batch import BatchRequest
from monitor.engine.tap import TapError
from monitor.guard.guard import Guard, GuardSession, PositionReport, Scope
from monitor.policy.compiled import CompiledPolicy
from monitor.server.metrics import Metrics
from monitor.server.worker import EventStream

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PromptScored:
    reports: list[PositionReport]
    alerts: list[Alert]


@dataclass(frozen=True)
class TokenOut:
    index: int
    token_id: int
    text: str
    reports: list[PositionReport]
    alerts: list[Alert]


@dataclass(frozen=True)
class Finished:
    finish_reason: str
    """``stop``, ``length``, ``content_filter`` (a policy stop)."""
    stop_message: str | None
    prompt_tokens: int
    completion_tokens: int
    monitor_errors: tuple[str, ...] = ()
    reports: list[PositionReport] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)


@dataclass(frozen=True)
class Failed:
    status: int
    message: str


@dataclass(frozen=True)
class Scored:
    reports: list[PositionReport]
    alerts: list[Alert]
    prompt_tokens: int


@dataclass
class Backend:
    """What jobs need: the engine (model), the guard and the metrics."""

    engine: Engine
    guard: Guard
    metrics: Metrics
    publish: Callable[[Alert], None]


def timed(callback: Callable[[Any, TapCall], Any], metrics: Metrics,
          only_phase: str | None = None) -> Callable[[Any, TapCall], Any]:
    """Wrap a tap callback: observe its duration per call; optionally only run in one phase."""

    def wrapped(x: Any, call: TapCall) -> Any:
        if only_phase is not None and call.phase != only_phase:
            return None
        t0 = time.perf_counter()
        try:
            return callback(x, call)
        finally:
            metrics.hook_seconds.labels(phase=call.phase).observe(time.perf_counter() - t0)

    return wrapped


def monitor_error_alert(policy: CompiledPolicy, request_id: str, model: str, hook: str, error: str) -> Alert:
    """The alert a fail_open monitor error raises (``action="monitor_error"``)."""
    from monitor.alerts.model import new_alert_id

    return Alert(alert_id=new_alert_id(), kind="rule", ts=time.time(), request_id=request_id,
                 rule_id="", policy_name=policy.name, policy_version=policy.version, mode=policy.mode,
                 action="monitor_error", severity="high", model=model, hook=hook,
                 detail=f"monitoring failed; {policy.on_monitor_error}: {error}")


class _AlertCursor:
    def __init__(self, session: GuardSession) -> None:
        self.session = session
        self.seen = 0

    def take(self) -> list[Alert]:
        new = self.session.alerts[self.seen:]
        self.seen = len(self.session.alerts)
        return list(new)


class ChatJob:
    """A chat generation with the guard attached.

    Two ways to run it, sharing one event handler (:meth:`_on_event`, :meth:`_complete`):
    :meth:`run` drives a single :class:`~monitor.engine.decode.Generation` (the
    one-at-a-time worker), and the batched scheduler calls :meth:`begin` (returns the
    :class:`BatchRequest` to add to the batch), :meth:`on_events` after every step, and
    :meth:`on_left_batch` once the request has left the batch.
    """

    def __init__(self, backend: Backend, stream: EventStream, request_id: str, prompt_ids: Sequence[int],
                 params: SamplingParams, policy: CompiledPolicy, scope_of: Callable[[int], Scope]) -> None:
        self.backend = backend
        self.stream = stream
        self.request_id = request_id
        self.prompt_ids = list(prompt_ids)
        self.params = params
        self.policy = policy
        self.scope_of = scope_of
        self._held: list[PositionReport] = []
        self._held_alerts: list[Alert] = []
        self._session: GuardSession | None = None
        self._cursor: _AlertCursor | None = None
        self._first = True
        self._pending: Any = None
        self._final: Any = None
        self._reported_errors = 0
        self._closed = False
        self.request: BatchRequest | None = None

    @property
    def on_tap_error(self) -> Literal["raise", "continue"]:
        """fail_open: go on unmonitored; fail_closed: end the request."""
        return "continue" if self.policy.on_monitor_error == "fail_open" else "raise"

    def fail(self, message: str, status: int = 503) -> None:
        if not self._closed:
            self._closed = True
            self.stream.put(Failed(status, message))
            self.stream.close()

    def _new_session(self, stop: Callable[[str], None]) -> GuardSession:
        b = self.backend
        self._session = b.guard.session(self.policy, self.request_id, publish=b.publish, scope_of=self.scope_of,
                                        intervene=True, stop=stop)
        self._cursor = _AlertCursor(self._session)
        return self._session

    # -- one at a time ---------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except TapError as exc:  # fail_closed: the monitor broke, the request ends with an error
            self._fail_closed(exc)
        except Exception as exc:
            safe_log(log, "exception", "chat_job_failed", request_id=self.request_id, error=str(exc))
            self.fail("internal error while generating (logged on the server)", 500)
        finally:
            self._close()

    def _run(self) -> None:
        b = self.backend
        holder: dict[str, Any] = {}
        session = self._new_session(stop=lambda msg: holder["gen"].stop(msg))
        with Tap(b.engine.model, b.guard.hook_name, timed(session.callback, b.metrics)) as tap:
            gen = b.engine.generation(self.prompt_ids, self.params, taps=[tap], request_id=self.request_id,
                                      on_tap_error=self.on_tap_error)
            holder["gen"] = gen
            for event in gen:
                if not self._on_event(event, gen.monitor_errors):
                    log.info("request_cancelled", request_id=self.request_id)
                    return
            self._complete(len(gen.prompt_ids), len(gen.completion_ids), gen.monitor_errors)

    # -- batched ---------------------------------------------------------------------------
    def begin(self) -> BatchRequest:
        """The request to add to the batch (its guard session is created here)."""
        req = BatchRequest(self.request_id, self.prompt_ids, self.params,
                           on_tap_error=self.on_tap_error)
        session = self._new_session(stop=req.stop)
        req.callbacks = ((self.backend.guard.hook_name, timed(session.callback, self.backend.metrics)),)
        self.request = req
        return req

    def on_events(self, events: Sequence[Any]) -> bool:
        """Handle the events of one step; False when the client has gone (cancel it)."""
        req = self.request
        assert req is not None
        return all(self._on_event(event, req.monitor_errors) for event in events)

    def on_left_batch(self) -> None:
        """The request has left the batch (finished and scored, or cancelled)."""
        req = self.request
        assert req is not None
        try:
            if self.stream.cancelled.is_set() or self._closed:
                return
            if req.error is not None:
                self._fail_closed(req.error)
                return
            self._complete(len(req.prompt_ids), len(req.completion_ids), req.monitor_errors)
        except Exception as exc:
            safe_log(log, "exception", "chat_job_failed", request_id=self.request_id, error=str(exc))
            self.fail("internal error while generating (logged on the server)", 500)
        finally:
            self._close()

    # -- shared event handling -------------------------------------------------------------
    def _on_event(self, event: Any, monitor_errors: Sequence[TapError]) -> bool:
        """One token event. Each token is emitted once the next event shows its forward pass
        (and so its scores) is done; the final event waits for :meth:`_complete`."""
        session, cursor = self._session, self._cursor
        assert session is not None and cursor is not None
        if event.finish_reason == "monitor_error":  # fail_closed: what was not monitored is not sent
            self._pending, self._final = None, event
            return True
        if self._first:
            self.stream.put(PromptScored(session.take_reports(), cursor.take()))
            self.backend.metrics.tokens.labels(kind="prompt").inc(len(self.prompt_ids))
            self._first = False
        self._report_monitor_errors(monitor_errors)
        if self._pending is not None:
            self._emit_token(self._pending, session, cursor)
            self._pending = None
        if self.stream.cancelled.is_set():
            return False
        if event.finish_reason is None:
            self._pending = event
        else:
            self._final = event
        return True

    def _complete(self, prompt_tokens: int, completion_tokens: int, monitor_errors: Sequence[TapError]) -> None:
        session, cursor, event = self._session, self._cursor, self._final
        assert session is not None and cursor is not None and event is not None
        self._report_monitor_errors(monitor_errors)
        if event.index >= 0:
            self._emit_token(event, session, cursor)
        m = self.backend.metrics
        reason = {"policy_stop": "content_filter"}.get(event.finish_reason, event.finish_reason)
        if reason == "content_filter":
            m.stops.inc()
        if session.clamped_positions:
            m.clamps.inc(session.clamped_positions)
        self.stream.put(Finished(reason, event.stop_message, prompt_tokens, completion_tokens,
                                 tuple(str(e) for e in monitor_errors),
                                 self._held + session.take_reports(), self._held_alerts + cursor.take()))

    def _fail_closed(self, exc: BaseException) -> None:
        b = self.backend
        b.metrics.monitor_errors.labels(outcome="fail_closed").inc()
        b.publish(monitor_error_alert(self.policy, self.request_id, b.guard.model_spec,
                                      b.guard.hook_name, str(exc)))
        self.fail(f"monitoring failed and the policy is fail_closed, so the response was ended: {exc}")

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self.stream.close()

    def _report_monitor_errors(self, errors: Sequence[TapError]) -> None:
        b = self.backend
        for err in errors[self._reported_errors:]:
            b.metrics.monitor_errors.labels(outcome="fail_open").inc()
            b.publish(monitor_error_alert(self.policy, self.request_id, b.guard.model_spec,
                                          b.guard.hook_name, str(err)))
        self._reported_errors = len(errors)

    def _emit_token(self, event: Any, session: GuardSession, cursor: _AlertCursor) -> None:
        """Emit ``event`` with the reports of positions up to its own (later ones are held:
        a length-stopped stream scores its last token before the previous one is emitted)."""
        self.backend.metrics.tokens.labels(kind="completion").inc()
        self._held.extend(session.take_reports())
        upto = len(self.prompt_ids) + event.index
        mine = [r for r in self._held if r.position <= upto]
        self._held = [r for r in self._held if r.position > upto]
        # after prefill every alert is response-scoped: token_index = response token index
        self._held_alerts.extend(cursor.take())
        alerts = [a for a in self._held_alerts if (a.token_index or 0) <= event.index]
        self._held_alerts = [a for a in self._held_alerts if (a.token_index or 0) > event.index]
        self.stream.put(TokenOut(event.index, event.token_id, event.text, mine, alerts))


class ScoreJob:
    def __init__(self, backend: Backend, stream: EventStream, request_id: str, ids: Sequence[int],
                 policy: CompiledPolicy, scope_of: Callable[[int], Scope]) -> None:
        self.backend = backend
        self.stream = stream
        self.request_id = request_id
        self.ids = list(ids)
        self.policy = policy
        self.scope_of = scope_of

    def fail(self, message: str) -> None:
        self.stream.put(Failed(503, message))
        self.stream.close()

    def run(self) -> None:
        b = self.backend
        try:
            session = b.guard.session(self.policy, self.request_id, publish=b.publish, scope_of=self.scope_of,
                                      intervene=False)
            # one prefill forward over the transcript; the sampled token is never scored
            with Tap(b.engine.model, b.guard.hook_name, timed(session.callback, b.metrics, "prefill")) as tap:
                gen = b.engine.generation(self.ids, SamplingParams(max_tokens=1), taps=[tap],
                                          request_id=self.request_id, on_tap_error="raise")
                for _ in gen:
                    break
            b.metrics.tokens.labels(kind="scored").inc(len(self.ids))
            self.stream.put(Scored(session.take_reports(), list(session.alerts), len(self.ids)))
        except TapError as exc:
            b.metrics.monitor_errors.labels(outcome="score").inc()
            self.stream.put(Failed(500, f"monitoring failed: {exc}"))
        except Exception as exc:
            safe_log(log, "exception", "score_job_failed", request_id=self.request_id, error=str(exc))
            self.stream.put(Failed(500, "internal error while scoring (logged on the server)"))
        finally:
            self.stream.close()
