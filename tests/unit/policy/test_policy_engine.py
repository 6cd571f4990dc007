"""The per-request engine over fake score sequences: thresholds, windows, runs, scopes,
any/all, firing edges, cooldown, clamp/steer durations, stop, shadow mode, alerts."""

from __future__ import annotations

from itertools import count

import pytest

from monitor.alerts.model import FeatureRef
from monitor.policy import RequestContext, StepResult
from tests.unit.policy.toys import PROBES, compile_rules


def scores(**kw: float) -> dict[str, float]:
    base = dict.fromkeys(PROBES, 0.0)
    base.update(kw)
    return base


def run(policy, seq, scope="response", tokens=None, context=None) -> list[StepResult]:
    """Feed a sequence of deception scores (or dicts) and return every StepResult."""
    mon = policy.new_request("req-1", context or RequestContext(model="m", hook="h"))
    out = []
    for i, s in enumerate(seq):
        sc = s if isinstance(s, dict) else scores(deception=s)
        sp = scope[i] if isinstance(scope, list | tuple) else scope
        tok = tokens[i] if tokens else f"t{i}"
        out.append(mon.step(sc, i, tok, sp))
    return out


def fired_at(results, rule_id="r") -> list[int]:
    return [i for i, r in enumerate(results) if rule_id in r.fired]


ALERT_RULE = """
- id: r
  when: {probe: deception, threshold: 0.5}
  then: [{alert: {severity: high}}]
"""


def test_threshold_is_inclusive_and_fires_on_rising_edge():
    policy = compile_rules(ALERT_RULE)
    results = run(policy, [0.1, 0.5, 0.9, 0.7, 0.2, 0.6, 0.49999])
    assert fired_at(results) == [1, 5]
    alert = results[1].alerts[0]
    assert (alert.action, alert.severity, alert.score, alert.threshold) == (
        "alert",
        "high",
        0.5,
        0.5,
    )


def test_calibrated_threshold_comes_from_pack():
    policy = compile_rules(
        """
        - id: r
          when: {probe: deception, threshold: calibrated, fpr: 0.05}
          then: [{alert: {severity: low}}]
        """
    )
    assert policy.rules[0].leaves[0].threshold == 0.6
    assert fired_at(run(policy, [0.59, 0.6])) == [1]


def test_mean_window_partial_at_start():
    policy = compile_rules(
        """
        - id: r
          when: {probe: deception, threshold: 0.5, window: {tokens: 3, reduce: mean}}
          then: [{alert: {severity: low}}]
        """
    )
    # windows: [.9] -> .9 fires; [.9,.0] .45 re-arms; [.9,0,.6] .5 fires; [0,.6,.3] .3; [.6,.3,.6] .5 fires
    results = run(policy, [0.9, 0.0, 0.6, 0.3, 0.6])
    assert fired_at(results) == [0, 2, 4]
    assert results[2].alerts[0].score == pytest.approx(0.5)


def test_max_window_holds_a_spike():
    policy = compile_rules(
        """
        - id: r
          when: {probe: deception, threshold: 0.8, window: {tokens: 2, reduce: max}}
          then: [{alert: {severity: low}}]
        """
    )
    results = run(policy, [0.9, 0.1, 0.1, 0.85])
    assert fired_at(results) == [0, 3]


def test_min_consecutive_needs_a_run_and_resets():
    policy = compile_rules(
        """
        - id: r
          when: {probe: deception, threshold: 0.5, min_consecutive: 3}
          then: [{alert: {severity: low}}]
        """
    )
    results = run(policy, [0.9, 0.9, 0.1, 0.9, 0.9, 0.9, 0.9])
    assert fired_at(results) == [5]


def test_cooldown_blocks_then_allows_a_pending_rearmed_rule():
    policy = compile_rules(
        """
        - id: r
          when: {probe: deception, threshold: 0.5}
          then: [{alert: {severity: low}}]
          cooldown_tokens: 3
        """
    )
    # fires at 0; re-arms at 1; true again at 2, 3 (cooling until 4); fires at 4.
    results = run(policy, [0.9, 0.1, 0.9, 0.9, 0.9, 0.9])
    assert fired_at(results) == [0, 4]


def test_scope_response_ignores_prompt_positions_and_their_scores():
    policy = compile_rules(
        """
        - id: r
          when: {probe: deception, threshold: 0.5, window: {tokens: 2, reduce: mean}}
          then: [{alert: {severity: low}}]
        """
    )
    seq = [1.0, 1.0, 0.2, 0.7]
    scope = ["prompt", "prompt", "response", "response"]
    # prompt scores never enter the response window: [.2] -> .2, [.2,.7] -> .45
    assert fired_at(run(policy, seq, scope)) == []


def test_scope_prompt_and_both():
    policy = compile_rules(
        """
        - id: p
          when: {probe: deception, threshold: 0.5, scope: prompt}
          then: [{alert: {severity: low}}]
        - id: b
          when: {probe: deception, threshold: 0.5, scope: both}
          then: [{alert: {severity: low}}]
        """
    )
    results = run(policy, [0.9, 0.9, 0.9], ["prompt", "response", "response"])
    assert fired_at(results, "p") == [0]
    assert fired_at(results, "b") == [0]


def test_any_and_all_and_primary_leaf():
    policy = compile_rules(
        """
        - id: any
          when:
            any:
              - {probe: deception, threshold: 0.5}
              - {probe: bias, threshold: 0.5}
          then: [{alert: {severity: low}}]
        - id: all
          when:
            all:
              - {probe: deception, threshold: 0.5}
              - {probe: bias, threshold: 0.5}
          then: [{alert: {severity: low}}]
        """
    )
    seq = [
        scores(bias=0.9),
        scores(bias=0.9, deception=0.9),
        scores(),
        scores(deception=0.7, bias=0.6),
    ]
    results = run(policy, seq)
    assert fired_at(results, "any") == [0, 3]
    assert fired_at(results, "all") == [1, 3]
    # the alert names the first true leaf in document order
    assert results[0].alerts[0].probe == "bias"
    any_alert = [a for a in results[3].alerts if a.rule_id == "any"][0]
    assert (any_alert.probe, any_alert.score) == ("deception", 0.7)


def test_clamp_duration_counts_firing_position_and_response_tokens():
    policy = compile_rules(
        """
        - id: r
          when: {probe: deception, threshold: 0.5, scope: both}
          then:
            - clamp: {features: [3, 5], value: 0.0, tokens: 3}
        """
    )
    seq = [0.9, 0.0, 0.0, 0.0, 0.0, 0.0]
    scope = ["prompt", "prompt", "response", "response", "response", "response"]
    results = run(policy, seq, scope)
    active = [dict(r.clamps) for r in results]
    # fired at prompt position 0 (counts 1), prompt position 1 covered for free,
    # then 2 response positions.
    assert active == [{3: 0.0, 5: 0.0}] * 4 + [{}, {}]
    assert results[0].alerts[0].action == "clamp"
    assert len(results[1].alerts) == 0  # one alert per firing, not per clamped token


def test_clamp_top_k_uses_pack_ranking_and_rest_lasts():
    policy = compile_rules(
        """
        - id: r
          when: {probe: unsafe_code, threshold: 0.5}
          then:
            - clamp: {top_k: 3, value: -1.0, tokens: rest}
        """
    )
    seq = [scores(unsafe_code=0.9)] + [scores()] * 50
    results = run(policy, seq)
    assert all(dict(r.clamps) == {32: -1.0, 33: -1.0, 34: -1.0} for r in results)


def test_refire_restarts_clamp_and_latest_clamp_wins_on_conflict():
    policy = compile_rules(
        """
        - id: a
          when: {probe: deception, threshold: 0.5}
          then: [{clamp: {features: [1, 2], value: 0.0, tokens: 2}}]
        - id: b
          when: {probe: bias, threshold: 0.5}
          then: [{clamp: {features: [2], value: 5.0, tokens: 5}}]
        """
    )
    seq = [
        scores(deception=0.9),  # a fires: 1,2 -> 0
        scores(bias=0.9),  # b fires: 2 -> 5 (latest wins), a still active
        scores(deception=0.9),  # a fires again: restarts, 2 -> 0 now
        scores(),
        scores(),
    ]
    results = run(policy, seq)
    assert [dict(r.clamps) for r in results] == [
        {1: 0.0, 2: 0.0},
        {1: 0.0, 2: 5.0},
        {1: 0.0, 2: 0.0},
        {1: 0.0, 2: 0.0},
        {2: 5.0},
    ]


def test_steer_and_stop_enforced():
    policy = compile_rules(
        """
        - id: r
          when: {probe: deception, threshold: 0.5}
          then:
            - steer: {probe: deception, strength: -2.0, tokens: 2}
            - steer: {feature: 7, strength: 1.5, tokens: 1}
            - stop: {message: "no more"}
        """
    )
    results = run(policy, [0.1, 0.9, 0.0, 0.0])
    assert results[0].stop is None and results[0].steers == ()
    assert [(s.target, s.strength) for s in results[1].steers] == [("deception", -2.0), (7, 1.5)]
    assert [(s.target, s.strength) for s in results[2].steers] == [("deception", -2.0)]
    assert results[3].steers == ()
    assert [r.stop for r in results] == [None, "no more", "no more", "no more"]
    assert [a.action for a in results[1].alerts] == ["steer", "steer", "stop"]
    assert all(a.severity == "info" for a in results[1].alerts)  # no alert action in rule


def test_first_stop_wins():
    policy = compile_rules(
        """
        - id: one
          when: {probe: deception, threshold: 0.5}
          then: [{stop: {message: first}}]
        - id: two
          when: {probe: bias, threshold: 0.5}
          then: [{stop: {message: second}}]
        """
    )
    results = run(policy, [scores(deception=0.9), scores(bias=0.9)])
    assert [r.stop for r in results] == ["first", "first"]


def test_shadow_mode_changes_nothing_and_says_would():
    rules = """
        - id: r
          when: {probe: deception, threshold: 0.5}
          then:
            - alert: {severity: critical}
            - clamp: {features: [1], tokens: 4}
            - steer: {feature: 2, strength: 1.0, tokens: 4}
            - stop: {message: bye}
        """
    shadow = run(compile_rules(rules, mode="shadow"), [0.9, 0.9, 0.1])
    enforce = run(compile_rules(rules), [0.9, 0.9, 0.1])
    assert [r.fired for r in shadow] == [r.fired for r in enforce]
    assert all(not r.clamps and not r.steers and r.stop is None for r in shadow)
    assert [a.action for a in shadow[0].alerts] == [
        "alert",
        "would_clamp",
        "would_steer",
        "would_stop",
    ]
    assert {a.mode for a in shadow[0].alerts} == {"shadow"}
    assert all(a.severity == "critical" for a in shadow[0].alerts)
    assert not shadow[0].intervenes and enforce[0].intervenes


def test_alert_fields_excerpt_features_and_ids():
    ids = count()
    ctx = RequestContext(
        model="smol",
        hook="blocks.1",
        clock=lambda: 123.5,
        new_id=lambda: f"id{next(ids)}",
        excerpt_chars=10,
    )
    policy = compile_rules(ALERT_RULE)
    mon = policy.new_request("req-9", ctx)
    calls = []

    def evidence(probe):
        calls.append(probe)
        return [FeatureRef(12, 3.5, "lying"), FeatureRef(40, 1.0, "")]

    mon.step(scores(), 0, "Hello ", "prompt", evidence)
    mon.step(scores(), 1, "world, ", "response", evidence)
    r = mon.step(scores(deception=0.75), 2, "trust me", "response", evidence)
    (alert,) = r.alerts
    assert calls == ["deception"]  # evidence asked only when alerting
    assert alert.alert_id == "id0" and alert.ts == 123.5 and alert.kind == "rule"
    assert (alert.request_id, alert.rule_id, alert.policy_name, alert.mode) == (
        "req-9",
        "r",
        "t",
        "enforce",
    )
    assert alert.policy_version == policy.version and len(policy.version) == 64
    assert (alert.concept, alert.token_index, alert.token) == ("deception", 2, "trust me")
    assert (alert.model, alert.hook) == ("smol", "blocks.1")
    assert alert.excerpt == "d, trust me"[-10:]
    assert alert.features == (FeatureRef(12, 3.5, "lying"), FeatureRef(40, 1.0, ""))


def test_requests_do_not_share_state():
    policy = compile_rules(ALERT_RULE)
    a = policy.new_request("a")
    b = policy.new_request("b")
    assert a.step(scores(deception=0.9), 0, "x", "response").fired == ("r",)
    assert b.step(scores(deception=0.9), 0, "x", "response").fired == ("r",)
    assert a.step(scores(deception=0.9), 1, "x", "response").fired == ()


def test_missing_score_is_an_error():
    policy = compile_rules(ALERT_RULE)
    with pytest.raises(ValueError, match="deception"):
        policy.new_request("a").step({"bias": 0.1}, 0, "x", "response")
    with pytest.raises(ValueError, match="deception"):
        policy.new_request("a").step(scores(deception=float("nan")), 0, "x", "response")


def test_disabled_rule_is_not_run():
    policy = compile_rules(
        """
        - id: r
          enabled: false
          when: {probe: deception, threshold: 0.5}
          then: [{alert: {severity: low}}]
        """
    )
    assert policy.rules == ()
    assert run(policy, [0.9])[0].fired == ()


def test_quiet_steps_are_cheap_and_empty():
    policy = compile_rules(ALERT_RULE)
    r = run(policy, [0.1])[0]
    assert r == StepResult() and not r.intervenes
