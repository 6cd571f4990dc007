"""The continuous-batching worker on a toy Llama model: concurrent requests share steps
and each gets the tokens it would get alone; a cancelled client leaves the batch; a job
that breaks fails alone; non-batchable jobs run between steps; close lets the batch
finish."""

from __future__ import annotations

import asyncio
import threading

import torch

from monitor.engine import Engine, SamplingParams
from monitor.engine.batch import BatchDecoder, BatchRequest
from monitor.server.worker import BatchWorker, EventStream
from tests.toymodel import ToyTokenizer, toy_model

MODEL = toy_model()
TOK = ToyTokenizer()
PROMPTS = [[1, 5, 6, 7], [1, 9, 3], [1, 12, 13, 14, 15, 4], [1, 20]]


class BatchJob:
    """The smallest batchable job: collects token ids, emits them and a final item."""

    def __init__(self, stream: EventStream, name: str, prompt: list[int], max_tokens: int = 12,
                 seen: list[int] | None = None, crash_at: int | None = None, cancel_at: int | None = None):
        self.stream, self.request_id, self.prompt = stream, name, prompt
        self.max_tokens, self.seen, self.crash_at, self.cancel_at = max_tokens, seen, crash_at, cancel_at
        self.request: BatchRequest | None = None
        self.tokens: list[int] = []

    def begin(self) -> BatchRequest:
        self.request = BatchRequest(self.request_id, self.prompt, SamplingParams(max_tokens=self.max_tokens))
        return self.request

    def on_events(self, events):
        for ev in events:
            if ev.index >= 0:
                self.tokens.append(ev.token_id)
                self.stream.put(ev.token_id)
            if self.crash_at is not None and len(self.tokens) >= self.crash_at:
                raise RuntimeError("job bug")
            if self.cancel_at is not None and len(self.tokens) >= self.cancel_at:
                self.stream.cancel()
        return not self.stream.cancelled.is_set()

    def on_left_batch(self) -> None:
        if not self.stream.cancelled.is_set():
            self.stream.put(("done", self.request.finish_reason))
        self.stream.close()

    def fail(self, message: str, status: int = 503) -> None:
        self.stream.put(("failed", status, message))
        self.stream.close()

    def run(self) -> None:  # never called: batchable jobs go through begin()
        raise AssertionError


class AloneJob:
    def __init__(self, stream: EventStream, log: list[str]):
        self.stream, self.request_id, self.log = stream, "alone", log

    def run(self) -> None:
        self.log.append("alone-ran")
        self.stream.put("alone")
        self.stream.close()

    def fail(self, message: str) -> None:
        self.stream.put(("failed", message))
        self.stream.close()


def alone_tokens(prompt: list[int], max_tokens: int = 12) -> list[int]:
    g = Engine(MODEL, TOK).generation(prompt, SamplingParams(max_tokens=max_tokens))
    list(g)
    return list(g.completion_ids)


class Observed(BatchWorker):
    """Records the batch size at every step."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.sizes: list[int] = []

    def _step(self) -> None:
        self.sizes.append(len(self._get_decoder().active))
        super()._step()


def make_worker(max_batch: int = 4) -> Observed:
    return Observed(lambda: BatchDecoder(MODEL, TOK, (), max_batch=max_batch), max_queue=16)


async def drain(stream: EventStream) -> list:
    return [item async for item in stream]


def run_jobs(worker: BatchWorker, make_jobs, gate: threading.Event | None = None):
    async def main():
        loop = asyncio.get_running_loop()
        jobs = make_jobs(loop)
        for j in jobs:
            worker.submit(j)
        worker.start()
        out = await asyncio.gather(*(drain(j.stream) for j in jobs))
        worker.close(5)
        return jobs, out

    with torch.inference_mode():
        return asyncio.run(main())


def test_concurrent_requests_share_steps_and_get_the_tokens_they_get_alone():
    worker = make_worker(max_batch=4)
    jobs, out = run_jobs(worker, lambda loop: [BatchJob(EventStream(loop), f"r{i}", p)
                                                  for i, p in enumerate(PROMPTS)])
    for j, items, p in zip(jobs, out, PROMPTS, strict=True):
        assert items[-1] == ("done", "length")
        assert items[:-1] == alone_tokens(p)
    assert max(worker.sizes) == 4  # they really were decoded together


def test_more_requests_than_rows_queue_and_join_as_rows_free_up():
    worker = make_worker(max_batch=2)
    prompts = PROMPTS + PROMPTS[:2]
    lengths = [3, 9, 5, 12, 4, 7]
    jobs, out = run_jobs(worker, lambda loop: [BatchJob(EventStream(loop), f"r{i}", p, max_tokens=n)
                                                  for i, (p, n) in enumerate(zip(prompts, lengths, strict=True))])
    for items, p, n in zip(out, prompts, lengths, strict=True):
        assert items[:-1] == alone_tokens(p, n)
    assert max(worker.sizes) == 2


def test_a_cancelled_client_leaves_the_batch_and_the_others_finish():
    worker = make_worker()
    jobs, out = run_jobs(worker, lambda loop: [
        BatchJob(EventStream(loop), "keep", PROMPTS[0], max_tokens=20),
        BatchJob(EventStream(loop), "gone", PROMPTS[1], max_tokens=20, cancel_at=3),
    ])
    assert out[0][:-1] == alone_tokens(PROMPTS[0], 20)
    assert len(out[1]) == 3 and ("done", "length") not in out[1]
    assert jobs[1].request not in worker._get_decoder().active


def test_a_job_that_breaks_fails_alone():
    worker = make_worker()
    jobs, out = run_jobs(worker, lambda loop: [
        BatchJob(EventStream(loop), "ok", PROMPTS[0]),
        BatchJob(EventStream(loop), "bad", PROMPTS[2], crash_at=2),
    ])
    assert out[0][:-1] == alone_tokens(PROMPTS[0])
    assert out[1][-1][0] == "failed" and out[1][-1][1] == 500 and "internal error" in out[1][-1][2]


def test_non_batchable_jobs_run_between_steps_and_close_lets_the_batch_finish():
    worker = make_worker()
    log: list[str] = []

    async def main():
        loop = asyncio.get_running_loop()
        first = BatchJob(EventStream(loop), "long", PROMPTS[0], max_tokens=30)
        alone = AloneJob(EventStream(loop), log)
        worker.submit(first)
        worker.start()
        worker.submit(alone)
        items_alone = await drain(alone.stream)
        closing = loop.run_in_executor(None, worker.close, 30)  # while "long" is still decoding
        items_first = await drain(first.stream)
        await closing
        return items_first, items_alone

    with torch.inference_mode():
        items_first, items_alone = asyncio.run(main())
    assert items_alone == ["alone"] and log == ["alone-ran"]
    assert items_first[-1] == ("done", "length") and items_first[:-1] == alone_tokens(PROMPTS[0], 30)


def test_two_requests_with_the_same_request_id_get_their_own_tokens():
    # the request id comes from the client's x-request-id header: it need not be unique
    worker = make_worker()
    jobs, out = run_jobs(worker, lambda loop: [BatchJob(EventStream(loop), "same-id", p) for p in PROMPTS[:3]])
    for items, p in zip(out, PROMPTS[:3], strict=True):
        assert items[:-1] == alone_tokens(p)


def test_long_prompts_joining_a_running_batch_are_prefilled_in_chunks_and_can_be_cancelled_meanwhile():
    worker = Observed(lambda: BatchDecoder(MODEL, TOK, (), max_batch=3, prefill_chunk=2), max_queue=16)
    long_prompt, gone_prompt = [1, *range(2, 12)], [1, *range(12, 21)]

    async def main():
        loop = asyncio.get_running_loop()
        late = [BatchJob(EventStream(loop), "long", long_prompt, max_tokens=8),
                BatchJob(EventStream(loop), "gone", gone_prompt, max_tokens=8)]

        class Spawner(BatchJob):
            def on_events(self, events):
                keep = super().on_events(events)
                if len(self.tokens) == 1:  # joins while "keep" decodes: chunked
                    for j in late:
                        worker.submit(j)
                if len(self.tokens) == 3:  # "gone" is still waiting for its prefill
                    assert late[1].request is not None and not late[1].request.completion_ids
                    late[1].stream.cancel()
                return keep

        first = Spawner(EventStream(loop), "keep", PROMPTS[0], max_tokens=20)
        worker.submit(first)
        worker.start()
        out = await asyncio.gather(*(drain(j.stream) for j in [first, *late]))
        worker.close(5)
        return [first, *late], out

    with torch.inference_mode():
        jobs, out = asyncio.run(main())
    assert out[0][:-1] == alone_tokens(PROMPTS[0], 20) and out[0][-1] == ("done", "length")
    assert out[1][:-1] == alone_tokens(long_prompt, 8) and out[1][-1] == ("done", "length")
    assert out[2] == [] and not worker._get_decoder().holds(jobs[2].request)
    assert worker._get_decoder().cache.lengths.sum() == 0
