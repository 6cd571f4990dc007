"""The guard inside the forward pass, on the toy model with a SAELens SAE and toy probes:
alerts, error-preserving clamps, shadow mode, stop, skipped positions."""

import pytest
import torch
from sae_lens import StandardSAE

from monitor.engine import Engine, SamplingParams
from monitor.guard import Guard, ProbeBank
from monitor.guard.guard import scope_by_prompt_length
from monitor.policy.loader import load_policy_text
from monitor.policy.packinfo import StaticPackInfo
from tests.toymodel import ToyTokenizer, toy_model
from tests.toymodel import toy_sae as _toy_sae

HOOK = "blocks.1.hook_resid_post"
PROMPT = [3, 7, 1, 9, 4]
D_SAE = 16


def toy_sae() -> StandardSAE:
    return _toy_sae(d_sae=D_SAE)


def toy_guard(always_high: bool = True) -> Guard:
    sae = toy_sae()
    # probe "hot" fires everywhere (huge bias); probe "cold" never does
    W = torch.zeros(D_SAE, 2)
    W[:, 0] = 0.01
    b = torch.tensor([20.0 if always_high else -20.0, -20.0])
    bank = ProbeBank(names=("hot", "cold"), concepts=("deception", "bias"), W=W, b=b, labels={3: "toy three"})
    return Guard(sae, bank, HOOK, ToyTokenizer(), model_spec="toy")


PACK = StaticPackInfo.build(D_SAE, {"hot": {"concept": "deception", "thresholds": {"0.01": 0.5}, "top_features": [3, 4]},
                                     "cold": {"concept": "bias", "thresholds": {"0.01": 0.5}, "top_features": [5]}})


def policy(then: str, mode: str = "enforce"):
    text = f"""
name: t
mode: {mode}
on_monitor_error: fail_open
rules:
  - id: r1
    when: {{probe: hot, threshold: 0.9, scope: response}}
    then:
{then}
"""
    return load_policy_text(text, PACK)


def run(guard, pol, n=8, engine=None):
    engine = engine or Engine(toy_model(), ToyTokenizer(), fast=True)
    alerts = []
    holder = {}
    sess = guard.session(pol, "req-1", alerts.append, scope_by_prompt_length(len(PROMPT)),
                         stop=lambda m: holder["gen"].stop(m))
    with guard.attach(engine.model, sess) as tap:
        gen = engine.generation(PROMPT, SamplingParams(max_tokens=n), taps=[tap], request_id="req-1")
        holder["gen"] = gen
        list(gen)
    return gen, sess, alerts


def test_alert_fires_once_on_rising_edge_with_all_fields():
    gen, sess, alerts = run(toy_guard(), policy("      - alert: {severity: high}"))
    assert len(alerts) == 1
    a = alerts[0]
    assert a.rule_id == "r1" and a.request_id == "req-1" and a.concept == "deception"
    assert a.model == "toy" and a.hook == HOOK and a.policy_version
    # position 0 and prompt positions are not in scope: the first response position fired
    assert sess.reports[0].position == 1  # position 0 (attention sink) skipped
    resp = [r for r in sess.reports if r.scope == "response"]
    assert resp[0].fired == ("r1",) and resp[0].token_index == 0


def test_clamp_changes_tokens_and_is_error_preserving():
    base, _, _ = run(toy_guard(), policy("      - alert: {severity: low}"))
    clamped, sess, _ = run(toy_guard(), policy("      - clamp: {features: [3, 4], value: 30.0, tokens: rest}"))
    assert sess.clamped_positions > 0
    assert clamped.completion_ids != base.completion_ids
    assert any(a.startswith("clamp:3=30") for r in sess.reports for a in r.actions)


def test_shadow_mode_changes_nothing_and_alerts_would_clamp():
    base, _, _ = run(toy_guard(), policy("      - alert: {severity: low}"))
    shadow, sess, alerts = run(toy_guard(), policy("      - clamp: {features: [3], value: 30.0, tokens: rest}", mode="shadow"))
    assert shadow.completion_ids == base.completion_ids
    assert sess.clamped_positions == 0
    assert [a.action for a in alerts] == ["would_clamp"]


def test_stop_ends_the_response_before_the_next_token():
    gen, sess, alerts = run(toy_guard(), policy("      - stop: {message: 'stopped by policy'}"), n=8)
    assert gen.finish_reason == "policy_stop" and gen.stop_message == "stopped by policy"
    # the first response position is the first generated token's; it fires at the step
    # that would produce token 2, so exactly one token was emitted
    assert len(gen.completion_ids) == 1


def test_no_action_when_probe_is_low():
    gen, sess, alerts = run(toy_guard(always_high=False), policy("      - stop: {message: x}"))
    assert alerts == [] and gen.finish_reason == "length"


def test_clamp_math_matches_decode_plus_error():
    from monitor.guard import clamp_features

    sae = toy_sae()
    x = torch.randn(3, 8)
    z = sae.encode(x)
    idx = torch.tensor([2, 5])
    vals = torch.tensor([1.5, 0.0])
    z2 = z.clone()
    z2[:, idx] = vals
    expected = sae.decode(z2) + (x - sae.decode(z))
    torch.testing.assert_close(clamp_features(x, z, sae.W_dec, idx, vals), expected, atol=1e-5, rtol=1e-5)
    # clamping to the current value changes nothing
    torch.testing.assert_close(clamp_features(x, z, sae.W_dec, idx, z[:, idx][0]).shape, x.shape)


@pytest.mark.parametrize("fast", [True, False])
def test_guard_works_on_both_runners(fast):
    engine = Engine(toy_model(), ToyTokenizer(), fast=fast)
    gen, sess, alerts = run(toy_guard(), policy("      - alert: {severity: high}"), engine=engine)
    assert len(alerts) == 1


def test_sink_like_rows_are_neither_scored_nor_changed():
    from monitor.engine.tap import TapCall

    guard = toy_guard()
    pol = policy("      - clamp: {features: [3], value: 30.0, tokens: rest}")
    sess = guard.session(pol, "req-s", lambda a: None, scope_by_prompt_length(0))
    x = torch.randn(1, 6, 8)
    x[0, 3] *= 500.0  # a sink-like row (like a long run of spaces)
    call = TapCall(HOOK, "prefill", 0, torch.tensor([[5, 6, 7, 8, 9, 10]]), ("req-s",))
    out = sess.callback(x, call)
    assert [r.position for r in sess.reports] == [1, 2, 4, 5]  # position 0 and the sink skipped
    assert out is not None and torch.equal(out[0, 3], x[0, 3]) and torch.equal(out[0, 0], x[0, 0])
    assert not torch.equal(out[0, 1], x[0, 1])


def test_batched_step_encodes_all_rows_once_and_each_request_reads_its_own_row():
    from monitor.engine.tap import TapCall

    guard = toy_guard()
    calls = []
    real_encode = guard.sae.encode
    guard.sae.encode = lambda x: (calls.append(tuple(x.shape)), real_encode(x))[1]
    batch = torch.randn(3, 1, 8)
    ids = torch.tensor([[5]])
    codes = [guard.encode(batch[j, :, :], TapCall(HOOK, "decode", 4, ids, ("r",), batch=batch, row=j))
             for j in range(3)]
    assert calls == [(3, 8)]  # one encode for the whole step
    for j in range(3):
        assert torch.allclose(codes[j], real_encode(batch[j]), atol=1e-6)
    # a row that differs from the step's (rewritten by an earlier callback) is encoded on its own
    other = batch[1] + 1.0
    z = guard.encode(other, TapCall(HOOK, "decode", 4, ids, ("r",), batch=batch, row=1))
    assert calls[-1] == (1, 8) and torch.allclose(z, real_encode(other), atol=1e-6)


def test_an_end_of_response_verdict_alerts_once_after_the_answer_at_its_last_token():
    text = """
name: t
mode: enforce
on_monitor_error: fail_open
rules:
  - id: end
    when: {probe: hot, threshold: 0.9, window: {tokens: 1, reduce: max}, at: response_end}
    then: [{alert: {severity: medium}}]
"""
    guard = toy_guard()
    gen, sess, alerts = run(guard, load_policy_text(text, PACK), n=6)
    assert alerts == []  # nothing while the answer streams
    end = sess.finish()
    assert [a.rule_id for a in end] == ["end"] and alerts == end
    last = [r for r in sess.reports if r.scope == "response"][-1]
    assert end[0].token_index == last.token_index == len(gen.completion_ids) - 1
    assert end[0].features  # the SAE features behind the score at that token
    assert sess.finish() == []
