"""Continuous batching gives each request the tokens it gets alone; requests join and leave
between steps; taps see only their own request; a failing tap ends only its request."""

import torch

from monitor.engine import Engine, SamplingParams
from monitor.engine.batch import BatchDecoder, BatchRequest
from tests.toymodel import ToyTokenizer, toy_model

HOOK = "blocks.0.hook_resid_post"
PROMPTS = [[3, 7, 1, 9, 4], [5, 5, 2], [9, 8, 7, 6, 5, 4, 3, 2], [4, 12]]


def alone(engine, prompt, params):
    gen = engine.generation(prompt, params)
    list(gen)
    return gen.completion_ids


def drain(dec, pending):
    """Add ``pending`` requests one per step (joining mid-flight) and run to completion."""
    order = list(pending)
    while order or dec.active:
        if order and not dec.full:
            dec.add(order.pop(0))
        dec.step()


def test_batched_greedy_tokens_equal_unbatched():
    model = toy_model()
    engine = Engine(model, ToyTokenizer())
    lengths = [7, 12, 3, 9]
    expected = [alone(engine, p, SamplingParams(max_tokens=n)) for p, n in zip(PROMPTS, lengths)]
    dec = BatchDecoder(model, ToyTokenizer(), max_batch=3)
    reqs = [BatchRequest(f"r{i}", p, SamplingParams(max_tokens=n)) for i, (p, n) in enumerate(zip(PROMPTS, lengths))]
    drain(dec, reqs)
    assert [r.completion_ids for r in reqs] == expected
    assert all(r.finish_reason == "length" for r in reqs)


def test_seeded_sampling_per_request_is_independent_of_batching():
    model = toy_model()
    engine = Engine(model, ToyTokenizer())
    params = [SamplingParams(max_tokens=8, temperature=1.0, seed=i) for i in range(3)]
    expected = [alone(engine, p, sp) for p, sp in zip(PROMPTS, params)]
    dec = BatchDecoder(model, ToyTokenizer(), max_batch=4)
    reqs = [BatchRequest(f"r{i}", p, sp) for i, (p, sp) in enumerate(zip(PROMPTS, params))]
    drain(dec, reqs)
    assert [r.completion_ids for r in reqs] == expected


def test_taps_see_only_their_request_and_errors_stay_isolated():
    model = toy_model()
    seen = {"a": [], "b": []}

    def watcher(name):
        def cb(x, call):
            assert x.shape[0] == 1 and call.request_ids == (name,)
            seen[name].extend(range(call.start_pos, call.start_pos + x.shape[1]))
        return cb

    def boom(x, call):
        if call.phase == "decode":
            raise RuntimeError("probe exploded")

    a = BatchRequest("a", PROMPTS[0], SamplingParams(max_tokens=6), callbacks=[(HOOK, watcher("a"))])
    b = BatchRequest("b", PROMPTS[1], SamplingParams(max_tokens=6), callbacks=[(HOOK, watcher("b"))])
    c = BatchRequest("c", PROMPTS[2], SamplingParams(max_tokens=6), callbacks=[(HOOK, boom)])
    dec = BatchDecoder(model, ToyTokenizer(), max_batch=4)
    drain(dec, [a, b, c])
    assert seen["a"] == list(range(len(PROMPTS[0]) + 6))
    assert seen["b"] == list(range(len(PROMPTS[1]) + 6))
    assert c.finish_reason == "monitor_error" and "request c" in str(c.monitor_errors[0])
    assert a.finish_reason == b.finish_reason == "length"
    assert not model.hook_dict[HOOK]._forward_hooks


def test_intervention_in_one_request_does_not_touch_another():
    model = toy_model()
    engine = Engine(model, ToyTokenizer())
    base = alone(engine, PROMPTS[0], SamplingParams(max_tokens=10))

    def shove(x, call):
        y = x.clone()
        y[..., 0] += 25.0
        return y

    plain = BatchRequest("plain", PROMPTS[0], SamplingParams(max_tokens=10))
    pushed = BatchRequest("pushed", PROMPTS[0], SamplingParams(max_tokens=10), callbacks=[(HOOK, shove)])
    dec = BatchDecoder(model, ToyTokenizer(), max_batch=2)
    dec.add(plain)
    dec.add(pushed)
    while dec.active:
        dec.step()
    assert plain.completion_ids == base
    assert pushed.completion_ids != base


def test_stop_request_and_eos_end_a_row_early():
    model = toy_model()
    engine = Engine(model, ToyTokenizer())
    first = alone(engine, PROMPTS[1], SamplingParams(max_tokens=6))
    dec = BatchDecoder(model, ToyTokenizer(), stop_token_ids=(first[3],), max_batch=2)
    r = BatchRequest("eos", PROMPTS[1], SamplingParams(max_tokens=6))
    dec.add(r)
    while dec.active:
        dec.step()
    assert r.finish_reason == "stop" and r.completion_ids == first[:3]

    dec = BatchDecoder(model, ToyTokenizer(), max_batch=2)
    other = BatchRequest("other", PROMPTS[1], SamplingParams(max_tokens=6))
    s = BatchRequest("stopper", PROMPTS[0], SamplingParams(max_tokens=6))
    dec.add(other)
    dec.add(s)
    s.stop("policy")
    while dec.active:
        dec.step()
    assert s.finish_reason == "policy_stop" and s.stop_message == "policy" and len(s.completion_ids) == 1
    assert other.completion_ids == first
    torch.testing.assert_close(dec.cache.lengths, torch.zeros(2, dtype=torch.long))


def test_prompts_of_different_lengths_prefilled_together_match_alone_and_taps_see_unpadded_rows():
    model = toy_model()
    engine = Engine(model, ToyTokenizer())
    params = SamplingParams(max_tokens=10)
    expected = [alone(engine, p, params) for p in PROMPTS]
    seen: dict[str, list[tuple[str, int, int]]] = {}

    def tap_for(name):
        def cb(x, call):
            assert call.request_ids == (name,)
            assert x.shape[:2] == tuple(call.token_ids.shape)  # no padded positions
            seen.setdefault(name, []).append((call.phase, call.start_pos, x.shape[1]))
        return cb

    dec = BatchDecoder(model, ToyTokenizer(), max_batch=4)
    reqs = [BatchRequest(f"r{i}", p, params, callbacks=((HOOK, tap_for(f"r{i}")),)) for i, p in enumerate(PROMPTS)]
    first = dec.add_many(reqs[:3])  # three prompts of lengths 5, 3 and 8 in one forward
    assert set(first) == set(reqs[:3]) and all(len(evs) == 1 for evs in first.values())
    while dec.active or reqs[3].completion_ids == []:
        if not reqs[3].completion_ids and len(reqs[0].completion_ids) == 4:
            dec.add(reqs[3])  # a fourth joins mid-flight
        dec.step()
    assert [r.completion_ids for r in reqs] == expected
    for i, p in enumerate(PROMPTS):
        assert seen[f"r{i}"][0] == ("prefill", 0, len(p))  # the tap saw exactly its prompt
        decode_starts = [s for ph, s, _ in seen[f"r{i}"][1:]]
        assert decode_starts == list(range(len(p), len(p) + len(decode_starts)))
