"""The single generation worker: FIFO, one job at a time, survives a crashing job, bounded
queue, shutdown fails queued jobs; EventStream hands items to asyncio in order."""

import asyncio
import threading
import time

import pytest

from monitor.server.worker import EventStream, QueueFullError, SingleWorker


class FakeJob:
    def __init__(self, stream, name, log, crash=False, hold=None):
        self.stream, self.request_id, self.log, self.crash, self.hold = stream, name, log, crash, hold

    def run(self):
        self.log.append(("start", self.request_id, threading.current_thread().name))
        if self.hold is not None:
            self.hold.wait(5)
        if self.crash:
            raise RuntimeError("boom")
        for i in range(3):
            self.stream.put((self.request_id, i))
        self.stream.close()

    def fail(self, message):
        self.stream.put(("failed", message))
        self.stream.close()


async def drain(stream):
    return [item async for item in stream]


def test_jobs_run_fifo_on_one_thread_and_a_crash_does_not_kill_the_worker():
    async def main():
        loop = asyncio.get_running_loop()
        worker = SingleWorker(max_queue=8)
        worker.start()
        log = []
        streams = [EventStream(loop) for _ in range(3)]
        worker.submit(FakeJob(streams[0], "a", log))
        worker.submit(FakeJob(streams[1], "b", log, crash=True))
        worker.submit(FakeJob(streams[2], "c", log))
        results = [await drain(s) for s in streams]
        worker.close(5)
        return log, results

    log, results = asyncio.run(main())
    assert [e[1] for e in log] == ["a", "b", "c"]
    assert {e[2] for e in log} == {"generation-worker"}
    assert results[0] == [("a", 0), ("a", 1), ("a", 2)]
    assert results[1][0][0] == "failed" and "internal error" in results[1][0][1]
    assert results[2] == [("c", 0), ("c", 1), ("c", 2)]


def test_bounded_queue_and_close_fails_what_never_started():
    async def main():
        loop = asyncio.get_running_loop()
        worker = SingleWorker(max_queue=1)
        worker.start()
        hold = threading.Event()
        log = []
        running, queued = EventStream(loop), EventStream(loop)
        worker.submit(FakeJob(running, "running", log, hold=hold))
        while not log:
            await asyncio.sleep(0.01)
        worker.submit(FakeJob(queued, "queued", log))
        with pytest.raises(QueueFullError):
            worker.submit(FakeJob(EventStream(loop), "overflow", log))
        closer = threading.Thread(target=worker.close, args=(5,))
        closer.start()
        time.sleep(0.1)
        hold.set()
        closer.join(5)
        return await drain(running), await drain(queued), log

    running, queued, log = asyncio.run(main())
    assert running == [("running", 0), ("running", 1), ("running", 2)]  # in-flight work finishes
    assert queued == [("failed", "the server is shutting down")]
    assert [e[1] for e in log] == ["running"]


def test_cancelled_stream_is_skipped():
    async def main():
        loop = asyncio.get_running_loop()
        worker = SingleWorker()
        worker.start()
        log = []
        s = EventStream(loop)
        s.cancel()
        worker.submit(FakeJob(s, "gone", log))
        items = await drain(s)
        worker.close(5)
        return items, log

    items, log = asyncio.run(main())
    assert items == [] and log == []
