"""Who runs forward passes: a :class:`Scheduler` takes jobs and runs them on the model.

The model is not thread-safe, so one thread owns it. A job produces items (tokens with
their scores, a final item) into an :class:`EventStream`, which hands them to the
asyncio side. Two schedulers implement the same protocol:

- :class:`BatchWorker` (the daemon's default): continuous batching. Chat requests join
  the running batch between decode steps (their prompt is prefilled into a free row) and
  leave it when they finish or their client goes away; every step is one forward pass
  for all of them. Each request keeps its own guard session (policy snapshot, windows,
  clamps, stop), sampling parameters and seed; greedy tokens are the same as alone.
  Jobs that cannot join a batch (``/v1/score``) run between steps.
- :class:`SingleWorker`: one job at a time, FIFO (models without the fast path, or
  ``max_batch: 1``).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from monitor.alerts.safelog import safe_log

if TYPE_CHECKING:
    from monitor.engine.batch import BatchDecoder, BatchRequest

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


class _QueuedWorker:
    """What both schedulers share: a bounded FIFO of jobs in front of one thread that owns
    the model; ``close`` fails what never started and lets the thread finish."""

    def __init__(self, max_queue: int = 64, threads: int | None = None) -> None:
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._closing = False
        self._threads = threads

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._main, name="generation-worker", daemon=True)
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

    def _main(self) -> None:
        _set_torch_threads(self._threads)  # OpenMP's thread count is per calling thread
        self._loop()

    def _loop(self) -> None:
        raise NotImplementedError

    def _run_job(self, job: Job) -> None:
        """Run one job to its end; a bug in it must not kill the worker."""
        try:
            job.run()
        except Exception as exc:
            safe_log(log, "exception", "job_crashed", request_id=job.request_id, error=str(exc))
            job.fail("internal error while generating (logged on the server)")


class SingleWorker(_QueuedWorker):
    """One generation thread that owns the model; jobs run one at a time, FIFO."""

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if job.stream.cancelled.is_set():
                job.stream.close()
                continue
            self._run_job(job)


def _set_torch_threads(n: int | None) -> None:
    """OpenMP's thread count is per calling thread: set it on the generation thread."""
    if n is not None:
        import torch

        torch.set_num_threads(n)


class BatchableJob(Job, Protocol):
    """A job that can share decode steps with others (see :class:`BatchWorker`)."""

    def begin(self) -> BatchRequest:
        """Called in the worker thread: the request to add to the batch."""
        ...

    def on_events(self, events: list[Any]) -> bool:
        """The request's new token events after a step; False to cancel it."""
        ...

    def on_left_batch(self) -> None:
        """The request has left the batch: emit the final item and close the stream."""
        ...

    def fail(self, message: str, status: int = 503) -> None: ...


class BatchWorker(_QueuedWorker):
    """Continuous batching on one thread: up to ``max_batch`` chat requests per forward.

    The loop: admit waiting jobs while the batch has room (the chat jobs taken in one
    admission are prefilled in one forward, except long prompts joining a running batch,
    which the decoder prefills a chunk per step: see :mod:`monitor.engine.batch`; a job
    without ``begin`` runs to completion right there), then one decode step
    for every active request, then route each request's events to its job. A request
    whose client went away is dropped from the batch before the next step. An error in
    one request's guard is that request's alone (the decoder isolates tap errors); an
    error in the step itself fails the requests in the batch (500) and starts a fresh
    batch, and the worker goes on. ``close`` fails the queued jobs and lets the requests
    in the batch run to their end (within its timeout).
    """

    def __init__(self, decoder_factory: Any, max_queue: int = 64, threads: int | None = None) -> None:
        super().__init__(max_queue, threads)
        self._factory = decoder_factory
        self._stop = False
        self._decoder: BatchDecoder | None = None
        self._jobs: dict[int, BatchableJob] = {}
        """Active jobs by ``id(request)``."""
        self.active = 0
        """Requests in the batch right now (read by metrics)."""

    # -- the loop --------------------------------------------------------------------------
    def _loop(self) -> None:
        import torch

        with torch.inference_mode():
            while not (self._stop and not self._jobs):
                self._admit()
                if self._jobs:
                    self._step()
                self.active = len(self._jobs)

    def _admit(self) -> None:
        """Take waiting jobs while the batch has room; the chat ones that arrived together
        are prefilled together (one forward)."""
        joining: list[BatchableJob] = []
        while not self._stop:
            decoder = self._get_decoder()
            if decoder.occupied + len(joining) >= decoder.max_batch:
                break
            try:  # block only when there is nothing to decode or join
                job = self._queue.get(block=not (self._jobs or joining))
            except queue.Empty:
                break
            if job is None:
                self._stop = True
                break
            if job.stream.cancelled.is_set():
                job.stream.close()
                continue
            if not hasattr(job, "begin"):
                self._run_job(job)
                continue
            joining.append(job)  # type: ignore[arg-type]
        if joining:
            self._join(self._get_decoder(), joining)

    def _join(self, decoder: BatchDecoder, jobs: list[BatchableJob]) -> None:
        reqs: list[BatchRequest] = []
        ready: list[BatchableJob] = []
        for job in jobs:
            try:
                reqs.append(job.begin())
                ready.append(job)
            except Exception as exc:
                safe_log(log, "exception", "job_crashed", request_id=job.request_id, error=str(exc))
                job.fail("internal error while generating (logged on the server)", 500)
        if not reqs:
            return
        try:
            events = decoder.add_many(reqs)
        except Exception as exc:
            safe_log(log, "exception", "prefill_failed", requests=[r.request_id for r in reqs], error=str(exc))
            for job in ready:
                job.fail("internal error while generating (logged on the server)", 500)
            self._reset_if_broken(decoder)
            return
        for req, job in zip(reqs, ready, strict=True):
            self._jobs[id(req)] = job
        self._dispatch(events, reqs)

    def _step(self) -> None:
        decoder = self._get_decoder()
        for req in [r for r in decoder.held if self._jobs[id(r)].stream.cancelled.is_set()]:
            decoder.remove(req)
            log.info("request_cancelled", request_id=req.request_id)
            self._leave(req)
        before = decoder.held  # a pending prompt may finish and sample in this step
        if not before:
            return
        try:
            events = decoder.step()
        except Exception as exc:
            safe_log(log, "exception", "batch_step_failed", requests=[r.request_id for r in before],
                     error=str(exc))
            for req in before:
                job = self._jobs.pop(id(req))
                job.fail("internal error while generating (logged on the server)", 500)
            self._decoder = None
            return
        self._dispatch(events, before)

    def _dispatch(self, events: dict[BatchRequest, list[Any]], involved: list[BatchRequest]) -> None:
        decoder = self._get_decoder()
        for req in involved:
            job = self._jobs.get(id(req))
            if job is None:
                continue
            evs = events.get(req, [])
            keep = True
            if evs:
                try:
                    keep = job.on_events(evs)
                except Exception as exc:
                    safe_log(log, "exception", "job_crashed", request_id=req.request_id, error=str(exc))
                    job.fail("internal error while generating (logged on the server)", 500)
                    keep = False
            if not keep and decoder.holds(req):
                decoder.remove(req)
            if not decoder.holds(req):
                self._leave(req)

    def _leave(self, req: BatchRequest) -> None:
        job = self._jobs.pop(id(req), None)
        if job is not None:
            job.on_left_batch()

    def _get_decoder(self) -> BatchDecoder:
        if self._decoder is None:
            self._decoder = self._factory()
        return self._decoder

    def _reset_if_broken(self, decoder: BatchDecoder) -> None:
        """A failed prefill may leave the decoder holding a half-added request: drop it."""
        for req in decoder.held:
            if id(req) not in self._jobs:
                decoder.remove(req)
