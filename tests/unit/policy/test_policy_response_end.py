"""Verdicts read once at the end of the response (``at: response_end``): never during the
answer, once at its end on the window ending at the last response token, alerts only."""

from __future__ import annotations

import pytest

from monitor.policy import PolicyError, RequestContext, load_policy_text
from tests.unit.policy.toys import PROBES, compile_rules, policy_yaml, toy_pack


def scores(v: float) -> dict[str, float]:
    return {**dict.fromkeys(PROBES, 0.0), "sycophancy": v}


def feed(policy, seq, scopes=None):
    mon = policy.new_request("req-1", RequestContext(model="m", hook="h"))
    during = []
    for i, v in enumerate(seq):
        scope = scopes[i] if scopes else "response"
        during.append(mon.step(scores(v), i, f"t{i}", scope))
    return mon, during


LAST = """
- id: end
  when: {probe: sycophancy, threshold: 0.5, window: {tokens: 1, reduce: max}, at: response_end}
  then: [{alert: {severity: medium}}]
"""


def test_an_end_verdict_never_fires_during_the_answer_and_reads_its_last_token_at_the_end():
    policy = compile_rules(LAST)
    mon, during = feed(policy, [0.9, 0.9, 0.2, 0.7])  # high early, high at the last token
    assert not any(r.alerts for r in during)
    end = mon.finish()
    assert end.fired == ("end",) and len(end.alerts) == 1
    a = end.alerts[0]
    assert (a.token_index, a.token, a.score, a.rule_id) == (3, "t3", 0.7, "end")
    assert mon.finish().alerts == ()  # once per request


def test_an_end_verdict_is_quiet_when_the_last_token_is_low_though_earlier_ones_were_high():
    mon, _ = feed(compile_rules(LAST), [0.9, 0.95, 0.1])
    assert mon.finish().alerts == ()


def test_a_long_mean_window_at_the_end_reads_the_mean_over_the_whole_answer():
    policy = compile_rules("""
    - id: end
      when: {probe: sycophancy, threshold: 0.5, window: {tokens: 4096, reduce: mean}, at: response_end}
      then: [{alert: {severity: low}}]
    """)
    mon, _ = feed(policy, [0.9, 0.9, 0.3, 0.9, 0.6, 0.4], scopes=["prompt", "prompt", *["response"] * 4])
    end = mon.finish()
    assert end.alerts and end.alerts[0].score == pytest.approx((0.3 + 0.9 + 0.6 + 0.4) / 4)  # prompt not counted
    mon2, _ = feed(policy, [0.9, 0.9, 0.1, 0.2, 0.3])  # mean 0.48 < 0.5
    assert mon2.finish().alerts == ()


def test_no_response_positions_no_end_verdict():
    mon, _ = feed(compile_rules(LAST), [0.9, 0.9], scopes=["prompt", "prompt"])
    assert mon.finish().alerts == ()


def test_every_token_rules_are_untouched_by_finish():
    policy = compile_rules(LAST + """
- id: live
  when: {probe: sycophancy, threshold: 0.5}
  then: [{alert: {severity: low}}]
""")
    mon, during = feed(policy, [0.9, 0.1, 0.8])
    assert [r.fired for r in during] == [("live",), (), ("live",)]
    assert mon.finish().fired == ("end",)


@pytest.mark.parametrize(("rules", "where", "says"), [
    ("""
- id: e
  when: {probe: sycophancy, threshold: 0.5, at: response_end}
  then: [{clamp: {features: [1], value: 0, tokens: 4}}]
""", "rules.0.then.0.clamp", "can only alert"),
    ("""
- id: e
  when: {probe: sycophancy, threshold: 0.5, at: response_end, scope: both}
  then: [{alert: {severity: low}}]
""", "rules.0.when.scope", "needs scope: response"),
    ("""
- id: e
  when:
    all:
      - {probe: sycophancy, threshold: 0.5, at: response_end}
      - {probe: deception, threshold: 0.5}
  then: [{alert: {severity: low}}]
""", "rules.0.when.all.1.at", "same time"),
])
def test_an_end_verdict_that_cannot_mean_anything_is_refused(rules, where, says):
    with pytest.raises(PolicyError) as err:
        load_policy_text(policy_yaml(rules), toy_pack())
    text = str(err.value)
    assert where in text and says in text, text


def test_a_bad_at_value_is_refused_by_the_schema():
    with pytest.raises(PolicyError, match="at"):
        load_policy_text(policy_yaml("""
- id: e
  when: {probe: sycophancy, threshold: 0.5, at: end_of_answer}
  then: [{alert: {severity: low}}]
"""), toy_pack())
