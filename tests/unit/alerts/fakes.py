"""In-memory stand-ins for the Redis writer (unit tests only; integration tests use a
real redis-server)."""

from __future__ import annotations

import threading

from monitor.alerts.model import Alert
from monitor.alerts.redis_stream import AlertTransportError, SendResult


def make_alert(i: int, request: str = "req", **kw) -> Alert:
    return Alert(
        alert_id=f"{request}-{i:06d}",
        kind="rule",
        ts=1.7e9 + i,
        request_id=request,
        token_index=i,
        **kw,
    )


class FakeWriter:
    """Idempotent like the Redis writer; can be taken down, gated, or fail mid-batch."""

    def __init__(self) -> None:
        self.up = True
        self.entries: list[Alert] = []
        self.ids: set[str] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.fail_after: int | None = None  # apply this many of the next batch, then fail
        self.calls = 0

    def send(self, alerts):
        self.gate.wait()
        self.calls += 1
        if not self.up:
            raise AlertTransportError("down")
        added = dup = 0
        for n, alert in enumerate(alerts):
            if self.fail_after is not None and n >= self.fail_after:
                self.fail_after = None
                raise AlertTransportError("connection reset mid-batch")
            if alert.alert_id in self.ids:
                dup += 1
            else:
                self.ids.add(alert.alert_id)
                self.entries.append(alert)
                added += 1
        return SendResult(added, dup)

    def ping(self):
        return self.up
