"""Run a function on the scheduler's thread: the one thread that owns the model.

The console's feature computations (decoder neighbours, logit effects, a token's SAE
codes) are torch work. Running torch on the event loop's thread would give it an OpenMP
thread team of its own and slow decoding (see ``Runtime.build_in_thread``), and the
model is not thread-safe, so these go through the scheduler like any other job.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from monitor.alerts.safelog import safe_log
from monitor.server.errors import ApiError
from monitor.server.runtime import Runtime
from monitor.server.worker import EventStream, QueueFullError

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Done:
    value: Any


@dataclass(frozen=True)
class _Error:
    message: str


class CallJob:
    """A job whose work is ``fn()``; its result (or error) goes to the stream."""

    def __init__(self, fn: Callable[[], Any], stream: EventStream, what: str) -> None:
        self.fn = fn
        self.stream = stream
        self.what = what
        self.request_id = f"ui-{uuid.uuid4().hex[:12]}"

    def run(self) -> None:
        try:
            self.stream.put(_Done(self.fn()))
        except Exception as exc:
            safe_log(log, "exception", "ui_job_failed", what=self.what, request_id=self.request_id,
                     error=str(exc))
            self.stream.put(_Error(f"{self.what} failed (logged on the server)"))
        finally:
            self.stream.close()

    def fail(self, message: str, status: int = 503) -> None:  # noqa: ARG002 - Job protocol
        self.stream.put(_Error(message))
        self.stream.close()


async def run_on_worker(runtime: Runtime, fn: Callable[[], Any], what: str) -> Any:
    """``fn()`` on the scheduler's thread; raises :class:`ApiError` (503) when it cannot run."""
    if runtime.gate.draining or not runtime.started:
        raise ApiError(503, "the server is not serving right now", code="unavailable")
    stream = EventStream(asyncio.get_running_loop())
    try:
        runtime.scheduler.submit(CallJob(fn, stream, what))
    except QueueFullError as exc:
        raise ApiError(503, str(exc), code="overloaded", headers={"Retry-After": "5"}) from None
    try:
        async for item in stream:
            if isinstance(item, _Done):
                return item.value
            if isinstance(item, _Error):
                raise ApiError(503, item.message, code="unavailable")
    finally:
        stream.cancel()
    raise ApiError(503, f"{what} was cancelled (server shutting down)", code="unavailable")
