"""Tap logic on the toy model: every position seen, identity is a no-op, edits change the
output, hooks are removed on exit even when the callback raised."""

import pytest
import torch

from monitor.engine import Engine, SamplingParams, Tap, TapError
from tests.toymodel import ToyTokenizer, toy_model

HOOK = "blocks.0.hook_resid_post"
PROMPT = [3, 7, 1, 9, 4]


@pytest.fixture(params=[True, False], ids=["fast", "stock"])
def engine(request):
    return Engine(toy_model(), ToyTokenizer(), stop_token_ids=(), fast=request.param)


def tokens_of(engine, taps=(), n=12, **kw):
    gen = engine.generation(PROMPT, SamplingParams(max_tokens=n), taps=taps, **kw)
    events = list(gen)
    return gen, [e.token_id for e in events if e.token_id >= 0]


def test_tap_sees_every_position_prefill_included(engine):
    seen = []

    def cb(x, call):
        seen.extend(range(call.start_pos, call.start_pos + x.shape[1]))
        assert x.shape[1] == call.token_ids.shape[1]

    with Tap(engine.model, HOOK, cb) as tap:
        gen, toks = tokens_of(engine, [tap], n=6)
    # prompt positions, then one per generated token (the last one scored too)
    assert seen == list(range(len(PROMPT) + len(toks)))


def test_identity_callback_leaves_tokens_identical_and_clamp_changes_them(engine):
    _, base = tokens_of(engine)
    with Tap(engine.model, HOOK, lambda x, call: x.clone()) as tap:
        _, same = tokens_of(engine, [tap])
    assert same == base

    def clamp(x, call):
        y = x.clone()
        y[..., 0] = 25.0
        return y

    with Tap(engine.model, HOOK, clamp) as tap:
        _, changed = tokens_of(engine, [tap])
    assert changed != base


def test_hooks_removed_after_exit_even_when_callback_raised(engine):
    hp = engine.model.hook_dict[HOOK]

    def boom(x, call):
        raise RuntimeError("probe exploded")

    with pytest.raises(TapError, match="request req-7.*probe exploded"), Tap(engine.model, HOOK, boom) as tap:
        assert len(hp._forward_hooks) == 1
        tokens_of(engine, [tap], request_id="req-7")
    assert len(hp._forward_hooks) == 0


def test_callback_error_with_continue_is_reported_and_generation_goes_on(engine):
    _, base = tokens_of(engine)

    def boom(x, call):
        raise RuntimeError("probe exploded")

    with Tap(engine.model, HOOK, boom) as tap:
        gen, toks = tokens_of(engine, [tap], request_id="r1", on_tap_error="continue")
    assert toks == base
    assert len(gen.monitor_errors) == 1 and "r1" in str(gen.monitor_errors[0])


def test_wrong_shape_from_callback_is_an_error(engine):
    with pytest.raises(TapError, match="shape"), Tap(engine.model, HOOK, lambda x, c: x[:, :, :4]) as tap:
        tokens_of(engine, [tap])


def test_unknown_hook_name_is_rejected():
    with pytest.raises(ValueError, match="unknown hook point"):
        Tap(toy_model(), "blocks.99.hook_resid_post", lambda x, c: None)


def test_stop_request_ends_stream_before_next_token(engine):
    holder = {}

    def cb(x, call):
        if call.phase == "decode" and call.start_pos == len(PROMPT) + 2:
            holder["gen"].stop("policy says stop")

    with Tap(engine.model, HOOK, cb) as tap:
        gen = engine.generation(PROMPT, SamplingParams(max_tokens=12), taps=[tap])
        holder["gen"] = gen
        events = list(gen)
    assert [e.token_id for e in events if e.token_id >= 0] == gen.completion_ids
    assert len(gen.completion_ids) == 3
    assert events[-1].finish_reason == "policy_stop" and events[-1].stop_message == "policy says stop"


def test_sampling_is_reproducible_with_seed(engine):
    p = SamplingParams(max_tokens=10, temperature=1.0, top_p=0.9, seed=123)
    a = [e.token_id for e in engine.generation(PROMPT, p)]
    b = [e.token_id for e in engine.generation(PROMPT, p)]
    assert a == b


def test_prompt_too_long_is_rejected(engine):
    from monitor.engine import PromptTooLongError

    with pytest.raises(PromptTooLongError, match="exceed the context"):
        engine.generation(list(range(2, 30)) * 3, SamplingParams(max_tokens=10))


def test_bad_sampling_params_are_rejected():
    for kw in ({"max_tokens": 0}, {"temperature": -1}, {"top_p": 0}):
        with pytest.raises(ValueError):
            SamplingParams(**kw)


def test_max_tokens_and_eos_stops():
    model = toy_model()
    eng = Engine(model, ToyTokenizer(), stop_token_ids=())
    gen = eng.generation(PROMPT, SamplingParams(max_tokens=5))
    events = list(gen)
    assert len(gen.completion_ids) == 5 and events[-1].finish_reason == "length"
    first = gen.completion_ids[2]
    eng2 = Engine(model, ToyTokenizer(), stop_token_ids=(first,))
    gen2 = eng2.generation(PROMPT, SamplingParams(max_tokens=5))
    list(gen2)
    assert gen2.finish_reason == "stop" and first not in gen2.completion_ids
    torch.testing.assert_close(torch.tensor(gen2.completion_ids), torch.tensor(gen.completion_ids[: len(gen2.completion_ids)]))
