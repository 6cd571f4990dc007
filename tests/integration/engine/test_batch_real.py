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


def test_a_long_prompt_prefilled_in_chunks_beside_a_running_request_gives_the_same_tokens(loaded_model, engine):
    """A 600-token prompt joins while another request decodes: it is prefilled 256 tokens per
    step (the other request gets a token at every step) and both get their tokens alone."""
    story = " ".join(f"Item {i}: the {['red', 'blue', 'green'][i % 3]} box holds {i * 7 % 13} coins." for i in range(50))
    long_prompt = engine.render([{"role": "user", "content": story + "\nWhich box holds the most coins?"}])
    short_prompt = engine.render([{"role": "user", "content": QUESTIONS[0]}])
    assert len(long_prompt) > 2 * 256
    params = SamplingParams(max_tokens=12)
    alone = []
    for p in (short_prompt, long_prompt):
        g = engine.generation(p, params)
        list(g)
        alone.append(g.completion_ids)
    dec = BatchDecoder(loaded_model.model, loaded_model.tokenizer, loaded_model.stop_token_ids, max_batch=2)
    short = BatchRequest("short", short_prompt, SamplingParams(max_tokens=40))
    long = BatchRequest("long", long_prompt, params)
    dec.add(short)
    assert dec.add(long) == [] and dec.pending == [long]
    steps = 0
    while dec.pending:
        events = dec.step()
        steps += 1
        assert len(events.get(short, [])) == 1  # never stalled by the long prefill
    assert steps == -(-len(long_prompt) // 256)
    while dec.active:
        dec.step()
    assert long.completion_ids == alone[1]
    assert short.completion_ids[:12] == alone[0][:12]
