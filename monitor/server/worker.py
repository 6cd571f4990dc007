"""Who runs forward passes: a :class:`Scheduler` takes jobs and runs them on the model.

The model is not thread-safe, so today one thread (:class:`SingleWorker`) owns it and
runs one job at a time, in arrival order. A job produces items (tokens with their
scores, a final item) into an :class:`EventStream`, which hands them to the asyncio
side. A batched scheduler (continuous batching, issue 8) implements the same
``Scheduler`` protocol: it reads the job's prompt, sampling parameters and guard
session and interleaves several jobs per step, emitting into the same streams.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator
from typing import Any, Protocol

import structlog

from monitor.alerts.safelog import safe_log

log = structlog.get_logger(__name__)

_END = object()


class EventStream:
    """Thread -> asyncio bridge for one request's items (unbounded; tokens are small)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self.cancelled = threading.Event()
        """Set by the consumer (client went away): the job stops at its next token."""

    def put(self, item: Any) -> None:
        """Called from the worker thread."""
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone (shutdown): nobody is listening
            self.cancelled.set()

    def close(self) -> None:
        self.put(_END)

    def cancel(self) -> None:
        self.cancelled.set()

    async def __aiter__(self) -> AsyncIterator[Any]:
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            yield item


class Job(Protocol):
    """A unit of model work. ``run`` executes in the scheduler's thread and emits into
    ``stream``; it must call nothing else that touches the model concurrently."""

    request_id: str
    stream: EventStream

    def run(self) -> None: ...

    def fail(self, message: str) -> None:
        """Emit a final error item (the job will not run, or crashed)."""
        ...


class QueueFullError(RuntimeError):
    """The scheduler's queue is full (503)."""


class Scheduler(Protocol):
    def start(self) -> None: ...

    def submit(self, job: Job) -> None:
        """Queue ``job``; raises :class:`QueueFullError`."""
        ...

    @property
    def depth(self) -> int:
        """Jobs waiting (not yet running)."""
        ...

    def close(self, timeout: float) -> None:
        """Finish the running job, fail the queued ones, stop the thread."""
        ...


class SingleWorker:
    """One generation thread that owns the model; jobs run one at a time, FIFO."""

    def __init__(self, max_queue: int = 64) -> None:
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._closing = False

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="generation-worker", daemon=True)
            self._thread.start()

    def submit(self, job: Job) -> None:
        if self._closing:
            raise QueueFullError("the server is shutting down")
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFullError(f"{self._queue.maxsize} requests already waiting for the model") from None

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float) -> None:
        self._closing = True
        while True:  # fail what never started
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.fail("the server is shutting down")
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if job.stream.cancelled.is_set():
                job.stream.close()
                continue
            try:
                job.run()
            except Exception as exc:  # a bug in one job must not kill the worker
                safe_log(log, "exception", "job_crashed", request_id=job.request_id, error=str(exc))
                job.fail("internal error while generating (logged on the server)")
