"""Greedy answers of the model to many chats at once (the engine's continuous batching)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from monitor.engine import Engine, SamplingParams
from monitor.engine.batch import BatchRequest

log = structlog.get_logger(__name__)


def greedy_answers(engine: Engine, chats: Sequence[Sequence[Mapping[str, str]]], max_tokens: int,
                   max_batch: int = 8, what: str = "answers") -> list[str]:
    """The model's greedy answer to each chat (ending with a user turn), in order.

    Deterministic for a given model and CPU kernels (greedy, no sampling); progress is
    logged every ``max_batch`` finished answers."""
    dec = engine.batch_decoder(max_batch=max_batch)
    tok: Any = engine.tokenizer
    params = SamplingParams(max_tokens=max_tokens)
    reqs = [BatchRequest(f"g{i}", engine.render([dict(m) for m in chat]), params) for i, chat in enumerate(chats)]
    waiting = list(reqs)
    done, t0, tokens = 0, time.perf_counter(), 0
    while waiting or dec.active or dec.pending:
        while waiting and not dec.full:
            dec.add(waiting.pop(0))
        dec.step()
        finished = sum(1 for r in reqs if r.finish_reason is not None)
        if finished // max_batch > done // max_batch or finished == len(reqs):
            tokens = sum(len(r.completion_ids) for r in reqs)
            log.info("generating", what=what, done=finished, of=len(reqs),
                     tok_per_s=round(tokens / (time.perf_counter() - t0), 1))
        done = finished
    for r in reqs:
        if r.error is not None:
            raise r.error
    return [str(tok.decode(r.completion_ids, skip_special_tokens=True)).strip() for r in reqs]
