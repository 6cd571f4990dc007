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
    assert all(not first.get(r) for r in reqs[:3])  # monitored: a first token waits for its forward
    after = dec.step()
    assert all([e.index for e in after[r]] == [0] for r in reqs[:3])
    while dec.active or reqs[3].completion_ids == []:
        if not reqs[3].completion_ids and len(reqs[0].completion_ids) == 4:
            dec.add(reqs[3])  # a fourth joins mid-flight
        dec.step()
    assert [r.completion_ids for r in reqs] == expected
    for i, p in enumerate(PROMPTS):
        assert seen[f"r{i}"][0] == ("prefill", 0, len(p))  # the tap saw exactly its prompt
        decode_starts = [s for ph, s, _ in seen[f"r{i}"][1:]]
        assert decode_starts == list(range(len(p), len(p) + len(decode_starts)))


LONG = [[(7 * i + k) % 29 + 1 for i in range(n)] for k, n in ((1, 11), (2, 8), (3, 13), (4, 9))]


def test_a_long_prompt_joining_a_running_batch_is_prefilled_in_chunks_while_the_others_decode():
    model = toy_model()
    engine = Engine(model, ToyTokenizer())
    params = SamplingParams(max_tokens=12)
    expected_a, expected_b = alone(engine, PROMPTS[1], params), alone(engine, LONG[0], params)
    calls: list[tuple[str, int, int]] = []

    def tap(x, call):
        calls.append((call.phase, call.start_pos, x.shape[1]))

    dec = BatchDecoder(model, ToyTokenizer(), max_batch=3, prefill_chunk=4)
    a = BatchRequest("a", PROMPTS[1], params)
    b = BatchRequest("b", LONG[0], params, callbacks=[(HOOK, tap)])
    dec.add(a)
    assert dec.add(b) == [] and dec.pending == [b] and dec.holds(b) and dec.full is False
    got_a, got_b = [], []
    for _ in range(3):  # 11 prompt tokens in chunks of 4, 4, 3: a decodes at every step
        events = dec.step()
        got_a.append(len(events.get(a, [])))
        got_b.append(len(events.get(b, [])))
    # a (unmonitored) gets each token as it is sampled; b's first token waits for its forward
    assert got_a == [1, 1, 1] and got_b == [0, 0, 0] and dec.pending == [] and dec.active == [a, b]
    assert calls == [("prefill", 0, 4), ("prefill", 4, 4), ("prefill", 8, 3)]
    assert [e.index for e in dec.step()[b]] == [0]
    while dec.active:
        dec.step()
    assert a.completion_ids == expected_a and b.completion_ids == expected_b
    assert [c[1] for c in calls[3:]] == list(range(11, 11 + len(calls) - 3))  # then one position per step


def test_pending_prompts_keep_their_cache_rows_through_joins_and_leaves():
    """Short and long prompts joining and leaving a full batch in every order: tokens equal alone."""
    model = toy_model()
    engine = Engine(model, ToyTokenizer())
    prompts = [PROMPTS[0], LONG[0], PROMPTS[1], LONG[1], LONG[2], PROMPTS[3], LONG[3], PROMPTS[2]]
    lengths = [3, 9, 5, 2, 7, 4, 6, 8]
    expected = [alone(engine, p, SamplingParams(max_tokens=n)) for p, n in zip(prompts, lengths)]
    for chunk in (2, 3, 5):
        dec = BatchDecoder(model, ToyTokenizer(), max_batch=3, prefill_chunk=chunk)
        reqs = [BatchRequest(f"r{i}", p, SamplingParams(max_tokens=n)) for i, (p, n) in enumerate(zip(prompts, lengths))]
        order = list(reqs)
        while order or dec.active or dec.pending:
            while order and not dec.full:
                dec.add(order.pop(0))
            dec.step()
        assert [r.completion_ids for r in reqs] == expected, chunk
        torch.testing.assert_close(dec.cache.lengths, torch.zeros(3, dtype=torch.long))


def test_a_pending_request_can_be_cancelled_and_a_lone_long_prompt_is_not_chunked():
    model = toy_model()
    engine = Engine(model, ToyTokenizer())
    params = SamplingParams(max_tokens=8)
    dec = BatchDecoder(model, ToyTokenizer(), max_batch=2, prefill_chunk=3)
    lone = BatchRequest("lone", LONG[2], params)
    assert len(dec.add(lone)) == 1 and dec.pending == []  # nobody to stall: one forward
    gone = BatchRequest("gone", LONG[1], params)
    assert dec.add(gone) == []
    dec.step()
    dec.remove(gone)
    assert not dec.holds(gone) and dec.pending == []
    late = BatchRequest("late", PROMPTS[0], params)
    dec.add(late)
    while dec.active:
        dec.step()
    assert gone.completion_ids == [] and gone.finish_reason is None
    assert lone.completion_ids == alone(engine, LONG[2], params)
    assert late.completion_ids == alone(engine, PROMPTS[0], params)


def test_a_short_prompt_joining_where_a_pending_prompt_sits_moves_it_aside():
    model = toy_model()
    engine = Engine(model, ToyTokenizer())
    params = SamplingParams(max_tokens=12)
    dec = BatchDecoder(model, ToyTokenizer(), max_batch=4, prefill_chunk=5)
    a, p, q, c = (BatchRequest(n, pr, params) for n, pr in (("a", PROMPTS[1]), ("p", LONG[1]), ("q", LONG[2]),
                                                             ("c", PROMPTS[0])))
    dec.add(a)
    dec.add(p)
    dec.add(q)
    assert [p._row, q._row] == [3, 2]
    while p not in dec.active:  # p's 2 chunks, then it moves to row 1
        dec.step()
    assert q._row == 2 and dec.cache.lengths[3] == 0
    dec.add(c)  # the active prefix grows into row 2: q's partial prompt moves to row 3
    assert dec.active == [a, p, c] and q._row == 3
    while dec.active or dec.pending:
        dec.step()
    assert [r.completion_ids for r in (a, p, q, c)] == [alone(engine, r.prompt_ids, params) for r in (a, p, q, c)]


def test_each_event_carries_the_scores_of_its_own_token_and_the_first_the_prompts():
    """``collect`` runs after each forward; a monitored token's event comes after the
    forward over it, so its scores are its own position's (no matching by position)."""
    model = toy_model()
    params = SamplingParams(max_tokens=5)
    dec = BatchDecoder(model, ToyTokenizer(), max_batch=2)
    made: dict[str, list[int]] = {"m": []}

    def cb(x, call):
        made["m"].extend(range(call.start_pos, call.start_pos + x.shape[1]))

    def collect():
        out, made["m"] = made["m"], []
        return out

    m = BatchRequest("m", PROMPTS[0], params, callbacks=[(HOOK, cb)], collect=collect)
    u = BatchRequest("u", PROMPTS[1], params)
    events: dict[str, list] = {"m": [], "u": []}
    for r, evs in dec.add_many([m, u]).items():
        events[r.request_id].extend(evs)
    assert [e.index for e in events["u"]] == [0] and events["m"] == []
    while dec.active:
        for r, evs in dec.step().items():
            events[r.request_id].extend(evs)
    n = len(PROMPTS[0])
    assert [e.index for e in events["m"]] == [0, 1, 2, 3, 4] and events["m"][-1].finish_reason == "length"
    assert events["m"][0].prompt_scores == list(range(n))
    assert [e.scores for e in events["m"]] == [[n + i] for i in range(5)]
    assert all(e.scores is None and e.prompt_scores is None for e in events["u"])


def test_a_monitor_error_under_raise_is_not_sent_with_the_token_it_broke_on():
    model = toy_model()

    def boom(x, call):
        if call.phase == "decode" and call.start_pos == len(PROMPTS[0]) + 2:
            raise RuntimeError("probe exploded")

    r = BatchRequest("r", PROMPTS[0], SamplingParams(max_tokens=8), callbacks=[(HOOK, boom)])
    dec = BatchDecoder(model, ToyTokenizer(), max_batch=1)
    events = list(dec.add(r))
    while dec.active:
        events.extend(dec.step().get(r, []))
    assert [e.index for e in events] == [0, 1, -1]  # token 2 broke the monitor: not sent
    assert events[-1].finish_reason == "monitor_error" and "probe exploded" in events[-1].monitor_errors[0]
