"""Malformed policy files: each is rejected with ``FILE:LINE: field.path: expected``
pointing at the right line and field, and a PolicyStore keeps serving the old policy
(same version, same snapshot) after reloading it, publishing a ``policy_error`` alert."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.policy import PolicyError, PolicyStore, check_policy_text, load_policy_text
from tests.unit.policy.toys import toy_pack

BASE = """\
name: base
mode: enforce
on_monitor_error: fail_open
rules:
  - id: r1
    when:
      probe: deception
      threshold: calibrated
      fpr: 0.01
      window: {tokens: 4, reduce: mean}
      scope: response
    then:
      - alert: {severity: high}
      - clamp: {top_k: 4, value: 0.0, tokens: 8}
    cooldown_tokens: 4
"""
LINES = BASE.splitlines()


def edit(changes: dict[int, str | None], append: str = "") -> str:
    """BASE with 1-based line replacements (None deletes the line)."""
    out = []
    for n, line in enumerate(LINES, start=1):
        if n in changes:
            if changes[n] is not None:
                out.append(changes[n])
        else:
            out.append(line)
    return "\n".join(out) + "\n" + append


# (id, text, line, field path, fragment of the message)
CASES = [
    # --- top level ------------------------------------------------------------------
    ("misspelt-name", edit({1: "nmae: base"}), 1, "nmae", "did you mean 'name'"),
    ("name-list", edit({1: "name: [a]"}), 1, "name", "valid string"),
    ("name-pattern", edit({1: "name: 'two words'"}), 1, "name", "expected letters, digits"),
    ("mode-value", edit({2: "mode: enforced"}), 2, "mode", "expected 'enforce' or 'shadow'"),
    ("mode-int", edit({2: "mode: 1"}), 2, "mode", "expected 'enforce' or 'shadow'"),
    ("mode-missing", edit({2: None}), 1, "mode", "missing required field"),
    (
        "on-error-value",
        edit({3: "on_monitor_error: fail_safe"}),
        3,
        "on_monitor_error",
        "'fail_open' or 'fail_closed'",
    ),
    (
        "on-error-misspelt",
        edit({3: "on_monitor_eror: fail_open"}),
        3,
        "on_monitor_eror",
        "did you mean 'on_monitor_error'",
    ),
    (
        "rules-scalar",
        "name: x\nmode: enforce\non_monitor_error: fail_open\nrules: 5\n",
        4,
        "rules",
        "expected a list",
    ),
    ("extra-top-key", edit({}, "version: 2\n"), 16, "version", "unknown field 'version'"),
    # --- rule -------------------------------------------------------------------------
    ("rule-id-misspelt", edit({5: "  - idd: r1"}), 5, "rules.0.idd", "did you mean 'id'"),
    (
        "rule-id-pattern",
        edit({5: '  - id: "bad id!"'}),
        5,
        "rules.0.id",
        "expected letters, digits",
    ),
    ("rule-id-int", edit({5: "  - id: 7"}), 5, "rules.0.id", "valid string"),
    ("when-misspelt", edit({6: "    whenn:"}), 6, "rules.0.whenn", "did you mean 'when'"),
    (
        "when-scalar",
        edit({6: "    when: 5", 7: None, 8: None, 9: None, 10: None, 11: None}),
        6,
        "rules.0.when",
        "expected a condition",
    ),
    (
        "cooldown-negative",
        edit({15: "    cooldown_tokens: -1"}),
        15,
        "rules.0.cooldown_tokens",
        "greater than or equal to 0",
    ),
    (
        "cooldown-word",
        edit({15: "    cooldown_tokens: soon"}),
        15,
        "rules.0.cooldown_tokens",
        "valid integer",
    ),
    ("enabled-string", edit({15: "    enabled: 'no'"}), 15, "rules.0.enabled", "valid boolean"),
    (
        "duplicate-rule-id",
        edit(
            {},
            "  - id: r1\n    when: {probe: bias, threshold: 0.5}\n    then: [{alert: {severity: low}}]\n",
        ),
        16,
        "rules.1.id",
        "duplicate rule id 'r1'",
    ),
    # --- condition ----------------------------------------------------------------------
    (
        "unknown-probe",
        edit({7: "      probe: decepton"}),
        7,
        "rules.0.when.probe",
        "unknown probe 'decepton'",
    ),
    ("probe-int", edit({7: "      probe: 5"}), 7, "rules.0.when.probe", "valid string"),
    ("probe-missing", edit({7: None}), 6, "rules.0.when.probe", "missing required field"),
    (
        "threshold-above-1",
        edit({8: "      threshold: 1.5"}),
        8,
        "rules.0.when.threshold",
        "between 0 and 1",
    ),
    (
        "threshold-word",
        edit({8: "      threshold: calibrate"}),
        8,
        "rules.0.when.threshold",
        "'calibrated'",
    ),
    (
        "threshold-quoted",
        edit({8: '      threshold: "0.8"'}),
        8,
        "rules.0.when.threshold",
        "between 0 and 1",
    ),
    (
        "threshold-misspelt",
        edit({8: "      thresold: calibrated"}),
        8,
        "rules.0.when.thresold",
        "did you mean 'threshold'",
    ),
    (
        "fpr-not-calibrated",
        edit({9: "      fpr: 0.02"}),
        9,
        "rules.0.when.fpr",
        "no threshold calibrated at fpr 0.02",
    ),
    ("fpr-zero", edit({9: "      fpr: 0"}), 9, "rules.0.when.fpr", "greater than 0"),
    ("fpr-missing", edit({9: None}), 6, "rules.0.when.fpr", "needs 'fpr'"),
    (
        "fpr-with-absolute",
        edit({8: "      threshold: 0.5"}),
        9,
        "rules.0.when.fpr",
        "only goes with threshold: calibrated",
    ),
    (
        "window-zero",
        edit({10: "      window: {tokens: 0, reduce: mean}"}),
        10,
        "rules.0.when.window.tokens",
        "greater than or equal to 1",
    ),
    (
        "window-reduce",
        edit({10: "      window: {tokens: 4, reduce: median}"}),
        10,
        "rules.0.when.window.reduce",
        "'mean' or 'max'",
    ),
    (
        "window-key",
        edit({10: "      window: {size: 4}"}),
        10,
        "rules.0.when.window.size",
        "unknown field 'size'",
    ),
    (
        "window-scalar",
        edit({10: "      window: 4"}),
        10,
        "rules.0.when.window",
        "expected a mapping",
    ),
    (
        "scope-value",
        edit({11: "      scope: output"}),
        11,
        "rules.0.when.scope",
        "'prompt', 'response' or 'both'",
    ),
    (
        "min-consecutive-zero",
        edit({11: "      min_consecutive: 0"}),
        11,
        "rules.0.when.min_consecutive",
        "greater than or equal to 1",
    ),
    (
        "min-consecutive-float",
        edit({11: "      min_consecutive: 2.5"}),
        11,
        "rules.0.when.min_consecutive",
        "valid integer",
    ),
    (
        "any-empty",
        edit({6: "    when: {any: []}", 7: None, 8: None, 9: None, 10: None, 11: None}),
        6,
        "rules.0.when.any",
        "at least 1",
    ),
    (
        "all-disjoint-scopes",
        edit(
            {
                6: "    when: {all: [{probe: deception, threshold: 0.5, scope: prompt}, {probe: bias, threshold: 0.5}]}",
                7: None,
                8: None,
                9: None,
                10: None,
                11: None,
            }
        ),
        6,
        "rules.0.when.all",
        "scopes do not overlap",
    ),
    (
        "any-child-bad-probe",
        edit(
            {
                6: "    when:",
                7: "      any:",
                8: "        - {probe: deception, threshold: 0.5}",
                9: "        - {probe: bais, threshold: 0.5}",
                10: None,
                11: None,
            }
        ),
        9,
        "rules.0.when.any.1.probe",
        "unknown probe 'bais'",
    ),
    (
        "duplicate-key",
        edit({11: "      probe: bias"}),
        11,
        "rules.0.when.probe",
        "duplicate key (first at line 7)",
    ),
    # --- actions ----------------------------------------------------------------------------
    (
        "then-empty",
        edit({12: "    then: []", 13: None, 14: None}),
        12,
        "rules.0.then",
        "at least 1",
    ),
    (
        "severity-value",
        edit({13: "      - alert: {severity: urgent}"}),
        13,
        "rules.0.then.0.alert.severity",
        "'high' or 'critical'",
    ),
    (
        "severity-missing",
        edit({13: "      - alert: {}"}),
        13,
        "rules.0.then.0.alert.severity",
        "missing required field",
    ),
    (
        "alert-no-settings",
        edit({13: "      - alert:"}),
        13,
        "rules.0.then.0",
        "'alert' needs its settings",
    ),
    (
        "unknown-action",
        edit({13: "      - alarm: {severity: high}"}),
        13,
        "rules.0.then.0.alarm",
        "unknown field 'alarm' (did you mean 'clamp' or 'alert'?)",
    ),
    (
        "two-actions-one-item",
        edit({13: "      - {alert: {severity: high}, stop: {message: x}}"}),
        13,
        "rules.0.then.0",
        "exactly one action",
    ),
    (
        "top-k-too-big",
        edit({14: "      - clamp: {top_k: 40, value: 0.0, tokens: 8}"}),
        14,
        "rules.0.then.1.clamp.top_k",
        "exceeds the 16 ranked features",
    ),
    (
        "feature-out-of-range",
        edit({14: "      - clamp: {features: [1, 64], tokens: 8}"}),
        14,
        "rules.0.then.1.clamp.features.1",
        "out of range; expected 0..63",
    ),
    (
        "feature-negative",
        edit({14: "      - clamp: {features: [-1], tokens: 8}"}),
        14,
        "rules.0.then.1.clamp.features.0",
        "negative",
    ),
    (
        "clamp-both-selectors",
        edit({14: "      - clamp: {top_k: 4, features: [1], tokens: 8}"}),
        14,
        "rules.0.then.1.clamp",
        "exactly one of 'features'",
    ),
    (
        "clamp-no-tokens",
        edit({14: "      - clamp: {top_k: 4, value: 0.0}"}),
        14,
        "rules.0.then.1.clamp.tokens",
        "missing required field",
    ),
    (
        "clamp-tokens-zero",
        edit({14: "      - clamp: {top_k: 4, tokens: 0}"}),
        14,
        "rules.0.then.1.clamp.tokens",
        "or 'rest'",
    ),
    (
        "clamp-tokens-word",
        edit({14: "      - clamp: {top_k: 4, tokens: forever}"}),
        14,
        "rules.0.then.1.clamp.tokens",
        "or 'rest'",
    ),
    (
        "clamp-unknown-probe",
        edit({14: "      - clamp: {top_k: 4, tokens: 8, probe: bogus}"}),
        14,
        "rules.0.then.1.clamp.probe",
        "unknown probe 'bogus'",
    ),
    (
        "clamp-value-word",
        edit({14: "      - clamp: {top_k: 4, value: zero, tokens: 8}"}),
        14,
        "rules.0.then.1.clamp.value",
        "valid number",
    ),
    (
        "steer-feature-range",
        edit({14: "      - steer: {feature: 99, strength: 1.0, tokens: 2}"}),
        14,
        "rules.0.then.1.steer.feature",
        "out of range",
    ),
    (
        "steer-infinite",
        edit({14: "      - steer: {probe: deception, strength: .inf, tokens: 2}"}),
        14,
        "rules.0.then.1.steer.strength",
        "finite number",
    ),
    (
        "steer-no-target",
        edit({14: "      - steer: {strength: 1.0, tokens: 2}"}),
        14,
        "rules.0.then.1.steer",
        "exactly one of 'feature'",
    ),
    (
        "stop-empty-message",
        edit({14: '      - stop: {message: ""}'}),
        14,
        "rules.0.then.1.stop.message",
        "expected at least 1 character",
    ),
    (
        "stop-misspelt",
        edit({14: "      - stop: {text: bye}"}),
        14,
        "rules.0.then.1.stop.text",
        "unknown field 'text'",
    ),
    # --- YAML syntax and document shape -------------------------------------------------------
    ("yaml-unclosed-flow", edit({7: "      probe: [deception"}), 7, "(yaml)", "invalid YAML"),
    ("yaml-tab", edit({6: "\twhen:"}), 6, "(yaml)", "invalid YAML"),
    ("yaml-unclosed-quote", edit({5: '  - id: "r1'}), 5, "(yaml)", "invalid YAML"),
    ("yaml-bad-indent", edit({8: "     threshold: calibrated"}), 8, "(yaml)", "invalid YAML"),
    ("yaml-two-documents", edit({}, "---\nname: other\n"), 16, "(yaml)", "single document"),
    ("root-list", "- name: x\n", 1, "(root)", "expected a mapping"),
    ("root-empty", "", 1, "(root)", "expected a mapping"),
]


def test_there_are_at_least_50_variants():
    assert len(CASES) >= 50
    assert len({c[0] for c in CASES}) == len(CASES)


def test_base_is_valid():
    assert check_policy_text(BASE, toy_pack(), "policy.yaml") == []


@pytest.mark.parametrize(
    ("text", "line", "path", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rejected_with_line_and_field(text, line, path, fragment):
    issues = check_policy_text(text, toy_pack(), "policy.yaml")
    assert issues, "variant was accepted"
    shown = [str(i) for i in issues]
    match = [i for i in issues if i.line == line and i.path == path and fragment in i.message]
    assert match, f"wanted policy.yaml:{line}: {path}: ...{fragment}...; got {shown}"
    assert str(match[0]) == f"policy.yaml:{line}: {path}: {match[0].message}"
    with pytest.raises(PolicyError) as err:
        load_policy_text(text, toy_pack(), "policy.yaml")
    assert str(match[0]) in str(err.value)


@pytest.fixture(scope="module")
def store_setup(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "policy.yaml"
    path.write_text(BASE)
    alerts = []
    store = PolicyStore(path, toy_pack(), on_alert=alerts.append)
    store.load()
    return store, path, alerts


@pytest.mark.parametrize(
    ("text", "line", "path_", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_store_keeps_old_policy(store_setup, text, line, path_, fragment):
    store, path, alerts = store_setup
    before = store.current
    path.write_text(text)
    result = store.reload()
    assert not result.ok and not result.changed
    assert store.current is before and result.version == before.version
    assert store.last_error == result
    alert = alerts[-1]
    assert (alert.kind, alert.policy_version, alert.policy_name) == (
        "policy_error",
        before.version,
        "base",
    )
    assert f"{path}:{line}: {path_}:" in alert.detail
    # the old snapshot still works
    mon = store.current.new_request("x")
    scores = {"deception": 0.95, "sycophancy": 0.0, "unsafe_code": 0.0, "bias": 0.0}
    assert mon.step(scores, 0, "t", "response").fired == ("r1",)


def test_store_recovers_after_bad_edits(store_setup):
    store, path, _ = store_setup
    path.write_text(BASE.replace("severity: high", "severity: low"))
    result = store.reload()
    assert result.ok and result.changed and store.last_error is None
    assert store.current.rules[0].severity == "low"
    path.write_text(BASE)  # leave it as the other tests expect
    assert store.reload().ok


def test_unreadable_file_keeps_old_policy(tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_text(BASE)
    store = PolicyStore(path, toy_pack())
    old = store.load()
    path.unlink()
    result = store.reload()
    assert not result.ok and result.attempted_version is None
    assert store.current is old
    assert "cannot read" in result.issues[0].message
