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
from typing import Any

import structlog

from monitor.alerts.model import Alert
from monitor.alerts.safelog import safe_log
from monitor.engine import Engine, SamplingParams, Tap, TapCall
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

    def fail(self, message: str) -> None:
        self.stream.put(Failed(503, message))
        self.stream.close()

    def run(self) -> None:
        try:
            self._run()
        except TapError as exc:  # fail_closed: the monitor broke, the request ends with an error
            b = self.backend
            b.metrics.monitor_errors.labels(outcome="fail_closed").inc()
            b.publish(monitor_error_alert(self.policy, self.request_id, b.guard.model_spec,
                                          b.guard.hook_name, str(exc)))
            self.stream.put(Failed(503, f"monitoring failed and the policy is fail_closed, so the response was ended: {exc}"))
        except Exception as exc:
            safe_log(log, "exception", "chat_job_failed", request_id=self.request_id, error=str(exc))
            self.stream.put(Failed(500, "internal error while generating (logged on the server)"))
        finally:
            self.stream.close()

    def _run(self) -> None:
        b = self.backend
        holder: dict[str, Any] = {}
        session = b.guard.session(self.policy, self.request_id, publish=b.publish, scope_of=self.scope_of,
                                  intervene=True, stop=lambda msg: holder["gen"].stop(msg))
        cursor = _AlertCursor(session)
        fail_open = self.policy.on_monitor_error == "fail_open"
        with Tap(b.engine.model, b.guard.hook_name, timed(session.callback, b.metrics)) as tap:
            gen = b.engine.generation(self.prompt_ids, self.params, taps=[tap], request_id=self.request_id,
                                      on_tap_error="continue" if fail_open else "raise")
            holder["gen"] = gen
            pending = None
            first = True
            reported_errors = 0
            for event in gen:
                if first:
                    self.stream.put(PromptScored(session.take_reports(), cursor.take()))
                    b.metrics.tokens.labels(kind="prompt").inc(len(self.prompt_ids))
                    first = False
                reported_errors = self._report_monitor_errors(gen, reported_errors)
                if pending is not None:
                    self._emit_token(pending, session, cursor)
                if self.stream.cancelled.is_set():
                    log.info("request_cancelled", request_id=self.request_id)
                    return
                if event.finish_reason is None:
                    pending = event
                    continue
                if event.index >= 0:
                    self._emit_token(event, session, cursor)
                self._finish(gen, event, session, cursor)

    def _report_monitor_errors(self, gen: Any, already: int) -> int:
        errors = gen.monitor_errors
        b = self.backend
        for err in errors[already:]:
            b.metrics.monitor_errors.labels(outcome="fail_open").inc()
            b.publish(monitor_error_alert(self.policy, self.request_id, b.guard.model_spec,
                                          b.guard.hook_name, str(err)))
        return len(errors)

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

    def _finish(self, gen: Any, event: Any, session: GuardSession, cursor: _AlertCursor) -> None:
        m = self.backend.metrics
        reason = {"policy_stop": "content_filter"}.get(event.finish_reason, event.finish_reason)
        if reason == "content_filter":
            m.stops.inc()
        if session.clamped_positions:
            m.clamps.inc(session.clamped_positions)
        self.stream.put(Finished(reason, event.stop_message, len(gen.prompt_ids), len(gen.completion_ids),
                                 tuple(str(e) for e in gen.monitor_errors),
                                 self._held + session.take_reports(), self._held_alerts + cursor.take()))


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
