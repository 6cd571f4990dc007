"""The alert sink: a non-blocking ``publish`` for the forward hook, a background sender
thread, and the disk spool for when Redis is away.

Guarantees:

- :meth:`AlertSink.publish` never waits for Redis or the disk: it appends to an
  in-memory queue under a lock held for microseconds. When the bounded queue is full,
  further alerts go to a spill list (still in memory, never dropped) that the sender
  writes to the spool at its next turn; from then on alerts travel through the spool
  until it has been replayed, which keeps them in publish order.
- The sender thread is the only writer of the spool, so the spool is in publish order;
  a batch Redis refused is spooled *before* anything newer. Replay sends the spool
  oldest first and deletes each segment only after Redis took it.
- Redis writes are idempotent per ``alert_id`` (:mod:`monitor.alerts.redis_stream`), so
  the at-least-once replay yields exactly one stream entry per alert.
- :meth:`close` flushes what it can, then spools whatever is left: nothing is lost on
  a clean shutdown, and nothing acknowledged to disk is lost on a crash.
- While idle, the sender PINGs Redis every ``heartbeat_s`` (1 s), so ``connected``
  turns false within about a second of Redis going away even when no alert is being
  written: a ``fail_closed`` policy then refuses new requests at once instead of after
  the next failed write (and accepts them again once a PING succeeds).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from monitor.alerts.model import Alert
from monitor.alerts.redis_stream import AlertTransportError, SendResult
from monitor.alerts.safelog import safe_log
from monitor.alerts.spool import Spool

log = structlog.get_logger(__name__)


class AlertWriter(Protocol):
    """Delivers alerts somewhere durable (Redis); raises AlertTransportError."""

    def send(self, alerts: Sequence[Alert]) -> SendResult: ...

    def ping(self) -> bool: ...


class AlertPublisher(Protocol):
    """What the policy engine and store need: a publish that never blocks."""

    def publish(self, alert: Alert) -> None: ...


@dataclass(frozen=True)
class SinkState:
    """Health of the sink (for ``/readyz`` and metrics)."""

    connected: bool
    """The last Redis operation succeeded."""
    spooling: bool
    """Alerts are waiting on disk (Redis was unreachable, or the queue overflowed)."""
    queue_depth: int
    """Alerts in memory (queue + spill list + the batch being sent)."""
    spooled: int
    """Alerts in the disk spool."""
    sent: int
    """Alerts written to the stream by this process."""
    duplicates: int
    """Re-sent alerts Redis already had (not written twice)."""
    spilled: int
    """Alerts that overflowed the in-memory queue."""
    last_error: str
    """The last transport or disk error ('' if none since the last success)."""


class AlertSink:
    """Bounded queue + sender thread + spool. Create, :meth:`start`, :meth:`publish`,
    :meth:`close`."""

    def __init__(
        self,
        writer: AlertWriter,
        spool: Spool,
        capacity: int = 10_000,
        batch_size: int = 256,
        retry_min_s: float = 0.1,
        retry_max_s: float = 2.0,
        heartbeat_s: float | None = 1.0,
    ) -> None:
        self.writer = writer
        self.spool = spool
        self.capacity = capacity
        self.batch_size = batch_size
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.heartbeat_s = heartbeat_s
        self._next_heartbeat = 0.0
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Alert] = deque()
        self._spill: deque[Alert] = deque()
        self._in_flight = 0
        self._stop = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._retry_at = 0.0
        self._backoff = retry_min_s
        self._connected = False
        self._sent = 0
        self._duplicates = 0
        self._spilled = 0
        self._last_error = ""

    # -- public API -------------------------------------------------------------------------
    def start(self) -> None:
        """Open the spool (replaying what an earlier run left) and start the sender."""
        if self._thread is not None:
            return
        self.spool.open()
        self._thread = threading.Thread(target=self._run, name="alert-sender", daemon=True)
        self._thread.start()

    def publish(self, alert: Alert) -> None:
        """Queue an alert; returns at once (safe to call from a forward hook)."""
        with self._cond:
            if self._closed:
                closed = True
            else:
                closed = False
                if not self._spill and len(self._queue) < self.capacity:
                    self._queue.append(alert)
                else:
                    self._spill.append(alert)
                    self._spilled += 1
                self._cond.notify_all()
        if closed:  # after close(): write through to disk rather than lose it
            safe_log(log, "warning", "alert_published_after_close", alert_id=alert.alert_id)
            self.spool.append([alert])

    def state(self) -> SinkState:
        """A consistent snapshot of the sink's health."""
        with self._cond:
            spooled = self.spool.pending
            return SinkState(
                connected=self._connected,
                spooling=spooled > 0,
                queue_depth=len(self._queue) + len(self._spill) + self._in_flight,
                spooled=spooled,
                sent=self._sent,
                duplicates=self._duplicates,
                spilled=self._spilled,
                last_error=self._last_error,
            )

    def flush(self, timeout: float) -> bool:
        """Wait until every published alert is in Redis; False on timeout (the rest
        stays queued or spooled)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._spill or self._in_flight or self.spool.pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
            return True

    def close(self, timeout: float = 5.0) -> bool:
        """Flush for up to ``timeout`` seconds, stop the sender, spool what is left.
        Returns True if everything reached Redis."""
        delivered = self.flush(timeout) if self._thread is not None else False
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(max(timeout, 1.0) + 5.0)
            self._thread = None
        with self._cond:
            self._closed = True
            leftover = list(self._queue) + list(self._spill)
            self._queue.clear()
            self._spill.clear()
        if leftover:
            self.spool.append(leftover)
        self.spool.close()
        safe_log(log, "info", "alert_sink_closed", delivered=delivered, spooled=self.spool.pending)
        return delivered

    # -- sender thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while True:  # a bug in one turn must not stop alert delivery for good
            try:
                self._loop()
                return
            except Exception:
                safe_log(log, "exception", "alert_sender_crashed_restarting")
                time.sleep(0.1)

    def _loop(self) -> None:
        self._set_connected(
            self.writer.ping(), "" if self.spool.pending == 0 else "spool not empty"
        )
        self._next_heartbeat = time.monotonic() + (self.heartbeat_s or 0.0)
        while True:
            heartbeat = False
            with self._cond:
                while not self._stop and not self._work_ready():
                    wait = self._wait_s()
                    if self.heartbeat_s is not None:
                        due = self._next_heartbeat - time.monotonic()
                        if due <= 0:
                            heartbeat = True
                            break
                        wait = due if wait is None else min(wait, due)
                    self._cond.wait(wait)
                if self._stop:
                    break
            if heartbeat:
                self._heartbeat()
                continue
            with self._cond:
                if self._stop:
                    break
                through_spool = bool(self._spill) or self.spool.pending > 0
                if through_spool:
                    batch = self._take_all()
                else:
                    batch = [
                        self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))
                    ]
                self._in_flight = len(batch)
            try:
                if through_spool:
                    self._persist(batch)
                    with self._cond:
                        self._in_flight = 0
                    if time.monotonic() >= self._retry_at:
                        self._replay()
                else:
                    self._send_direct(batch)
            except Exception:  # a bug must not kill the sender silently
                safe_log(log, "exception", "alert_sender_error")
                with self._cond:
                    if self._in_flight:  # not yet on disk: keep them, in order
                        self._queue.extendleft(reversed(batch))
                    self._in_flight = 0
                self._failed("internal error")
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()
        with self._cond:
            rest = self._take_all()
        self._persist(rest)

    def _heartbeat(self) -> None:
        """Idle: is Redis still there? (Any successful write also counts as a beat.)"""
        assert self.heartbeat_s is not None
        self._next_heartbeat = time.monotonic() + self.heartbeat_s
        ok = self.writer.ping()
        with self._cond:
            if not ok and self._connected:
                self._connected = False
                self._last_error = "redis unreachable (heartbeat PING failed)"
                safe_log(log, "warning", "alert_redis_heartbeat_failed")
            elif ok and not self._connected and self.spool.pending == 0 and not self._spill:
                self._connected = True
                self._last_error = ""
                safe_log(log, "info", "alert_redis_heartbeat_ok")

    def _work_ready(self) -> bool:
        if self._queue or self._spill:
            return True
        return self.spool.pending > 0 and time.monotonic() >= self._retry_at

    def _wait_s(self) -> float | None:
        if self.spool.pending > 0:
            return max(0.0, self._retry_at - time.monotonic())
        return None

    def _take_all(self) -> list[Alert]:
        items = list(self._queue) + list(self._spill)
        self._queue.clear()
        self._spill.clear()
        return items

    def _send_direct(self, batch: list[Alert]) -> None:
        try:
            result = self.writer.send(batch)
        except AlertTransportError as exc:
            self._persist(batch)  # before anything newer: order is kept
            self._failed(str(exc))
            safe_log(
                log,
                "warning",
                "alert_redis_unreachable_spooling",
                error=str(exc),
                spooled=len(batch),
            )
            return
        self._delivered(result)

    def _replay(self) -> None:
        replayed = 0
        for segment in self.spool.closed_segments():
            alerts = segment.alerts
            for start in range(0, len(alerts), self.batch_size):
                try:
                    result = self.writer.send(alerts[start : start + self.batch_size])
                except AlertTransportError as exc:
                    self._failed(str(exc))
                    return
                self._delivered(result)
                replayed += result.added
                self._spool_new_arrivals()
                if self._stop:
                    return
            self.spool.discard(segment)
        if replayed or self.spool.pending == 0:
            safe_log(
                log, "info", "alert_spool_replayed", replayed=replayed, pending=self.spool.pending
            )

    def _spool_new_arrivals(self) -> None:
        with self._cond:
            items = self._take_all()
            self._in_flight = len(items)
        self._persist(items)
        with self._cond:
            self._in_flight = 0

    def _persist(self, items: list[Alert]) -> None:
        if not items:
            return
        try:
            self.spool.append(items)
        except OSError as exc:  # disk full, etc.: keep them in memory and retry later
            safe_log(log, "error", "alert_spool_write_failed", error=str(exc), count=len(items))
            with self._cond:
                self._queue.extendleft(reversed(items))
                self._in_flight = 0
            self._failed(f"spool: {exc}")
            time.sleep(self._backoff)

    def _delivered(self, result: SendResult) -> None:
        with self._cond:
            self._sent += result.added
            self._duplicates += result.duplicates
            self._connected = True
            self._last_error = ""
            self._backoff = self.retry_min_s
            self._retry_at = 0.0
            if self.heartbeat_s is not None:
                self._next_heartbeat = time.monotonic() + self.heartbeat_s
            self._cond.notify_all()

    def _failed(self, error: str) -> None:
        with self._cond:
            self._connected = False
            self._last_error = error
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, self.retry_max_s)

    def _set_connected(self, connected: bool, error: str) -> None:
        with self._cond:
            self._connected = connected
            if not connected:
                self._last_error = error or "redis unreachable"
