"""The last policy reloads, accepted or rejected and why (shown by the console)."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from monitor.policy import ReloadResult


@dataclass(frozen=True)
class ReloadRecord:
    ts: float
    """Wall-clock time of the attempt (seconds since the epoch)."""
    result: ReloadResult

    def to_json(self) -> dict[str, Any]:
        r = self.result
        outcome = "changed" if r.changed else "unchanged" if r.ok else "rejected"
        return {"ts": self.ts, "outcome": outcome, "version": r.version, "attempted_version": r.attempted_version,
                "issues": [str(i) for i in r.issues], "warnings": [str(w) for w in r.warnings]}


class ReloadHistory:
    """A bounded, thread-safe list of reload attempts (newest last)."""

    def __init__(self, size: int = 50) -> None:
        self._lock = threading.Lock()
        self._items: deque[ReloadRecord] = deque(maxlen=size)

    def record(self, result: ReloadResult) -> None:
        with self._lock:
            self._items.append(ReloadRecord(time.time(), result))

    def items(self) -> list[ReloadRecord]:
        with self._lock:
            return list(self._items)
