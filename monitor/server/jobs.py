"""The model work behind each endpoint, run by the scheduler's thread.

:class:`ChatJob` generates with the guard attached (its own :class:`GuardSession`: per-
request windows, clamps and stop) and emits, in order: one :class:`PromptScored`, one
:class:`TokenOut` per generated token, then :class:`Finished` (or :class:`Failed`).
The decode loop hands each token over *after* the forward pass over it, with the reports
and alerts the guard made of that very token (``TokenEvent.scores``, filled by the
session's ``collect``): one token of extra latency, ~50 ms on a CPU, and nothing to match
back by position.

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
from monitor.engine import Engine, SamplingParams, TapCall
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

    One event handler (:meth:`on_events`) whichever way it runs: :meth:`run` drives a
    batch of one (:class:`~monitor.engine.decode.Generation`, the one-at-a-time worker),
    and the batched scheduler calls :meth:`begin` (returns the :class:`BatchRequest` to add
    to the batch), :meth:`on_events` after every step, and :meth:`on_left_batch` once the
    request has left the batch.
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
        self._session: GuardSession | None = None
        self._cursor: _AlertCursor | None = None
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

    def begin(self) -> BatchRequest:
        """The request to run (its guard session is created here)."""
        req = BatchRequest(self.request_id, self.prompt_ids, self.params, on_tap_error=self.on_tap_error)
        b = self.backend
        session = self._session = b.guard.session(self.policy, self.request_id, publish=b.publish,
                                                  scope_of=self.scope_of, intervene=True, stop=req.stop)
        cursor = self._cursor = _AlertCursor(session)
        req.callbacks = ((b.guard.hook_name, timed(session.callback, b.metrics)),)
        req.collect = lambda: (session.take_reports(), cursor.take())
        self.request = req
        return req

    # -- one at a time ---------------------------------------------------------------------
    def run(self) -> None:
        try:
            gen = self.backend.engine.generation_of(self.begin())  # a batch of one
            for event in gen:
                if not self.on_events([event]):
                    log.info("request_cancelled", request_id=self.request_id)
                    return
            self._complete()
        except TapError as exc:  # fail_closed: the monitor broke, the request ends with an error
            self._fail_closed(exc)
        except Exception as exc:
            safe_log(log, "exception", "chat_job_failed", request_id=self.request_id, error=str(exc))
            self.fail("internal error while generating (logged on the server)", 500)
        finally:
            self._close()

    # -- batched ---------------------------------------------------------------------------
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
            self._complete()
        except Exception as exc:
            safe_log(log, "exception", "chat_job_failed", request_id=self.request_id, error=str(exc))
            self.fail("internal error while generating (logged on the server)", 500)
        finally:
            self._close()

    # -- events ----------------------------------------------------------------------------
    def on_events(self, events: Sequence[Any]) -> bool:
        """Send each event's token with its own scores; False when the client has gone."""
        req = self.request
        assert req is not None
        m = self.backend.metrics
        for event in events:
            self._report_monitor_errors(req.monitor_errors)
            if event.finish_reason == "monitor_error":  # fail_closed: what was not monitored is not sent
                self._final = event
                continue
            if event.prompt_scores is not None:
                self.stream.put(PromptScored(*event.prompt_scores))
                m.tokens.labels(kind="prompt").inc(len(self.prompt_ids))
            if event.index >= 0:
                reports, alerts = event.scores if event.scores is not None else ([], [])
                m.tokens.labels(kind="completion").inc()
                self.stream.put(TokenOut(event.index, event.token_id, event.text, reports, alerts))
            if event.finish_reason is not None:
                self._final = event
            if self.stream.cancelled.is_set():
                return False
        return True

    def _complete(self) -> None:
        req, session, cursor, event = self.request, self._session, self._cursor, self._final
        assert req is not None and session is not None and cursor is not None and event is not None
        self._report_monitor_errors(req.monitor_errors)
        m = self.backend.metrics
        reason = {"policy_stop": "content_filter"}.get(event.finish_reason, event.finish_reason)
        if reason == "content_filter":
            m.stops.inc()
        if session.clamped_positions:
            m.clamps.inc(session.clamped_positions)
        session.finish()  # the answer is out: end-of-response verdicts are read now (alerts below)
        self.stream.put(Finished(reason, event.stop_message, len(req.prompt_ids), len(req.completion_ids),
                                 tuple(str(e) for e in req.monitor_errors),
                                 session.take_reports(), cursor.take()))

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
            gen = b.engine.generation(self.ids, SamplingParams(max_tokens=1),
                                      callbacks=[(b.guard.hook_name, timed(session.callback, b.metrics, "prefill"))],
                                      request_id=self.request_id, on_tap_error="raise")
            for _ in gen:
                break
            session.finish()  # the transcript's last response token is its end
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
