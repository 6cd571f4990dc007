"""The schema: committed policies/schema.json is current, every model field is described,
the action registry and the schema agree, and the shipped policies do what they say."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest
from pydantic import BaseModel

from monitor.policy import load_policy_file
from monitor.policy.actions import action_names, get_action, register_action
from monitor.policy.actions.base import ActionContext
from monitor.policy.schema import ActionEntry, Policy, policy_json_schema_text
from tests.unit.policy.toys import PROBES, toy_pack

ROOT = Path(__file__).resolve().parents[3]
POLICIES = ROOT / "policies"


def test_committed_schema_json_is_current():
    committed = (POLICIES / "schema.json").read_text(encoding="utf-8")
    assert committed == policy_json_schema_text(), (
        "run: saeguard policy schema --out policies/schema.json"
    )
    assert json.loads(committed)["additionalProperties"] is False


def _walk(tp: object, seen: set[type[BaseModel]]) -> None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if tp in seen:
            return
        seen.add(tp)
        for field in tp.model_fields.values():
            _walk(field.annotation, seen)
    for arg in get_args(tp):
        _walk(arg, seen)


def all_models() -> list[type[BaseModel]]:
    seen: set[type[BaseModel]] = set()
    _walk(Policy, seen)
    return sorted(seen, key=lambda m: m.__name__)


def test_schema_reaches_every_model():
    names = {m.__name__ for m in all_models()}
    assert {
        "Policy",
        "Rule",
        "ProbeCondition",
        "AnyCondition",
        "AllCondition",
        "Window",
        "ActionEntry",
        "AlertSpec",
        "ClampSpec",
        "SteerSpec",
        "StopSpec",
    } <= names


@pytest.mark.parametrize("model", all_models(), ids=lambda m: m.__name__)
def test_every_field_is_described_and_models_are_strict(model):
    assert model.model_config.get("extra") == "forbid"
    assert model.model_config.get("frozen") is True
    for name, field in model.model_fields.items():
        assert field.description, f"{model.__name__}.{name} has no description"


def test_registry_and_schema_list_the_same_actions():
    assert (
        set(action_names()) == set(ActionEntry.model_fields) == {"alert", "clamp", "steer", "stop"}
    )


@pytest.mark.parametrize("name", action_names())
def test_registered_action_spec_matches_schema_field(name):
    kind = get_action(name)
    assert kind.name == name
    annotation = ActionEntry.model_fields[name].annotation
    assert kind.spec_type in annotation.__args__


def test_registering_twice_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_action(get_action("alert"))
    with pytest.raises(KeyError, match="registered"):
        get_action("explode")


def test_validate_without_pack_skips_pack_checks():
    spec = get_action("clamp").spec_type.model_validate({"features": [10_000], "tokens": 3})
    ctx = ActionContext(pack=None, rule_probes=("deception",))
    assert get_action("clamp").validate(spec, ctx) == []


# --- shipped policies -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["default", "strict", "shadow"])
def test_shipped_policy_is_valid(name):
    policy = load_policy_file(POLICIES / f"{name}.yaml", toy_pack())
    assert policy.name == name


def test_default_alerts_on_all_four_calibrated_and_clamps_unsafe_code():
    policy = load_policy_file(POLICIES / "default.yaml", toy_pack())
    assert policy.mode == "enforce"
    alerted = {r.leaves[0].probe for r in policy.rules if any(a.kind == "alert" for a in r.actions)}
    assert alerted == set(PROBES)
    for rule in policy.rules:
        assert all(leaf.threshold_source == "calibrated@fpr=0.01" for leaf in rule.leaves)
    (clamp_rule,) = [r for r in policy.rules if any(a.kind == "clamp" for a in r.actions)]
    (clamp,) = [a for a in clamp_rule.actions if a.kind == "clamp"]
    assert clamp_rule.leaves[0].probe == "unsafe_code"
    assert tuple(clamp.clamps) == toy_pack().probes["unsafe_code"].top_features[: len(clamp.clamps)]


def test_shadow_is_default_in_shadow_mode():
    default = load_policy_file(POLICIES / "default.yaml", toy_pack())
    shadow = load_policy_file(POLICIES / "shadow.yaml", toy_pack())
    assert shadow.mode == "shadow"
    assert shadow.rules == default.rules
    assert shadow.on_monitor_error == default.on_monitor_error


def test_strict_stops_on_sustained_high_deception():
    policy = load_policy_file(POLICIES / "strict.yaml", toy_pack())
    stop_rules = [r for r in policy.rules if any(a.kind == "stop" for a in r.actions)]
    assert [r.leaves[0].probe for r in stop_rules] == ["deception"]
    mon = policy.new_request("r")
    base = dict.fromkeys(PROBES, 0.0)
    results = [mon.step({**base, "deception": 0.97}, i, "x", "response") for i in range(4)]
    assert results[1].stop is None and results[2].stop is not None
    assert any(r.clamps for r in results) is False
