"""On the real model: batched decoding gives each request the same greedy tokens as
decoding it alone."""

import pytest

from monitor.engine import SamplingParams
from monitor.engine.batch import BatchDecoder, BatchRequest

pytestmark = pytest.mark.slow

QUESTIONS = ["What is the capital of France?", "Name a prime number larger than 10.",
             "Give me one tip for sleeping better.", "Translate 'good morning' to Spanish."]


def test_batched_and_unbatched_greedy_tokens_are_identical(loaded_model, engine):
    prompts = [engine.render([{"role": "user", "content": q}]) for q in QUESTIONS]
    params = SamplingParams(max_tokens=16)
    alone = []
    for p in prompts:
        g = engine.generation(p, params)
        list(g)
        alone.append(g.completion_ids)
    dec = BatchDecoder(loaded_model.model, loaded_model.tokenizer, loaded_model.stop_token_ids, max_batch=4)
    reqs = [BatchRequest(f"r{i}", p, params) for i, p in enumerate(prompts)]
    pending = list(reqs)
    dec.add(pending.pop(0))
    dec.add(pending.pop(0))
    while pending or dec.active:  # the others join mid-flight
        if pending:
            dec.add(pending.pop(0))
        dec.step()
    assert [r.completion_ids for r in reqs] == alone
