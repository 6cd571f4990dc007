"""Actions are typed effects in one table: each carries its own firing and its own
residual edit, so the engine and the guard run a new one without per-action code."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from monitor.policy.actions import CompiledAction, SteerTarget, action_names, get_action
from monitor.policy.actions.base import EditPlan, RequestControl, ResidualEdit
from tests.unit.policy.test_policy_engine import run
from tests.unit.policy.toys import compile_rules

RULE = """
- id: r
  when: {probe: deception, threshold: 0.5}
  then: [{alert: {severity: high}}]
"""


@dataclass(frozen=True)
class Nudge(CompiledAction):
    """A new effect, defined only here: clamp feature 1 and steer along feature 3."""

    def fire(self, request: RequestControl) -> None:
        request.hold(self)

    def apply(self, edit: ResidualEdit) -> None:
        edit.clamp({1: 0.0})
        edit.steer([SteerTarget(3, 0.5)])


def _with_nudge(mode: str):
    policy = compile_rules(RULE, mode=mode)
    rule = dataclasses.replace(policy.rules[0], actions=(Nudge(kind="nudge", intervenes=True, tokens=2),))
    return dataclasses.replace(policy, rules=(rule,))


def test_a_new_effect_runs_through_the_engine_unchanged() -> None:
    results = run(_with_nudge("enforce"), [0.9, 0.9, 0.9, 0.1])
    assert [r.fired for r in results] == [("r",), (), (), ()]
    assert [a.action for a in results[0].alerts] == ["nudge"]
    assert [dict(r.clamps) for r in results] == [{1: 0.0}, {1: 0.0}, {}, {}]  # held for 2 tokens
    assert [r.steers for r in results[:2]] == [(SteerTarget(3, 0.5),)] * 2
    assert all(r.intervenes for r in results[:2]) and not results[2].intervenes


def test_in_shadow_mode_a_new_effect_only_alerts() -> None:
    results = run(_with_nudge("shadow"), [0.9, 0.9])
    assert [a.action for a in results[0].alerts] == ["would_nudge"]
    assert not any(r.effects or r.intervenes for r in results)


def test_each_registered_action_compiles_to_its_own_effect_type() -> None:
    policy = compile_rules("""
- id: r
  when: {probe: deception, threshold: 0.5}
  then:
    - alert: {severity: low}
    - clamp: {features: [4], value: 0.0, tokens: 3}
    - steer: {feature: 5, strength: -1.0, tokens: rest}
    - stop: {message: stopped}
""")
    effects = policy.rules[0].actions
    assert [e.kind for e in effects] == list(action_names())
    assert len({type(e) for e in effects}) == 4 and CompiledAction not in {type(e) for e in effects}
    plan = EditPlan.of(effects)
    assert plan.clamps == {4: 0.0} and plan.steers == [SteerTarget(5, -1.0)]
    assert {get_action(e.kind).name for e in effects} == set(action_names())
