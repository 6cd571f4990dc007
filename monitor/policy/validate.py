"""Semantic checks of a parsed policy, optionally against the guard pack.

The schema (:mod:`monitor.policy.schema`) checks each value's form; this module checks
what needs the whole document or the pack: unique rule ids, ``fpr`` given exactly
with ``threshold: calibrated``, ``all`` groups whose scopes can overlap, probe names,
calibrated false-positive rates, feature ids and ``top_k`` (through each action's
plug-in). With ``pack=None`` only the pack-independent checks run.
"""

from __future__ import annotations

from monitor.policy.actions import ActionContext, get_action
from monitor.policy.issues import Issue, Loc
from monitor.policy.packinfo import PackInfo
from monitor.policy.schema import (
    AllCondition,
    AnyCondition,
    Condition,
    Policy,
    ProbeCondition,
    Rule,
)

_SCOPES: dict[str, frozenset[str]] = {
    "prompt": frozenset({"prompt"}),
    "response": frozenset({"response"}),
    "both": frozenset({"prompt", "response"}),
}


def validate_policy(policy: Policy, pack: PackInfo | None) -> list[Issue]:
    """Every semantic problem in ``policy`` (empty when it is valid)."""
    issues: list[Issue] = []
    first_seen: dict[str, int] = {}
    for i, rule in enumerate(policy.rules):
        loc: Loc = ("rules", i)
        if rule.id in first_seen:
            issues.append(
                Issue(
                    loc + ("id",),
                    f"duplicate rule id {rule.id!r} (also rules.{first_seen[rule.id]})",
                )
            )
        else:
            first_seen[rule.id] = i
        issues.extend(_check_condition(rule.when, loc + ("when",), pack))
        issues.extend(_check_response_end(rule, loc))
        ctx = ActionContext(pack=pack, rule_probes=condition_probes(rule.when))
        for j, entry in enumerate(rule.then):
            kind = entry.kind()
            for issue in get_action(kind).validate(entry.spec(), ctx):
                issues.append(Issue(loc + ("then", j, kind) + issue.loc, issue.message))
    return issues


def policy_warnings(policy: Policy, pack: PackInfo | None) -> list[Issue]:
    """Valid rules whose calibrated threshold does not mean what ``fpr`` says.

    A threshold calibrated at ``fpr`` was measured on the maximum over a *response* of the
    probe's scores pooled with one window (``probes.json`` -> ``runtime_window``). Read
    through another window, or on prompt tokens, the same number fires at an unmeasured
    rate. These are warnings, not errors: a stricter or looser reading can be deliberate.
    """
    if pack is None:
        return []
    out: list[Issue] = []
    for i, rule in enumerate(policy.rules):
        for leaf, loc in _leaves_with_loc(rule.when, ("rules", i, "when")):
            if leaf.threshold != "calibrated" or leaf.fpr is None:
                continue
            probe = pack.probes.get(leaf.probe)
            if probe is None or probe.threshold_at(leaf.fpr) is None:
                continue
            rate = f"{leaf.fpr * 100:g}%"
            used = (leaf.window.tokens, leaf.window.reduce, leaf.at)
            calibrated = probe.calibration_window
            if calibrated is not None and not _same_window(used, calibrated):
                out.append(Issue(loc + ("window",), (
                    f"warning: probe {leaf.probe!r} was calibrated with window {_fmt_window(calibrated)} "
                    f"(probes.json runtime_window) but this rule uses {_fmt_window(used)}: its "
                    f"false-positive rate is not the calibrated {rate}")))
            if leaf.scope != "response":
                out.append(Issue(loc + ("scope",), (
                    f"warning: the calibrated thresholds of probe {leaf.probe!r} were measured on "
                    f"responses; with scope: {leaf.scope} their false-positive rate on prompt "
                    f"tokens is not known to be {rate}")))
    return out


def _same_window(a: tuple[int, str, str], b: tuple[int, str, str]) -> bool:
    """A one-token window is the same reading whether it is pooled by mean or max."""
    return a[0] == b[0] and (a[0] == 1 or a[1] == b[1]) and a[2] == b[2]


def _fmt_window(window: tuple[int, str, str]) -> str:
    at = "" if window[2] == "every_token" else f", at: {window[2]}"
    return f"{{tokens: {window[0]}, reduce: {window[1]}{at}}}"


def _leaves_with_loc(cond: Condition, loc: Loc) -> list[tuple[ProbeCondition, Loc]]:
    if isinstance(cond, ProbeCondition):
        return [(cond, loc)]
    if isinstance(cond, AnyCondition):
        return [x for j, c in enumerate(cond.any) for x in _leaves_with_loc(c, loc + ("any", j))]
    return [x for j, c in enumerate(cond.all) for x in _leaves_with_loc(c, loc + ("all", j))]


def condition_probes(cond: Condition) -> tuple[str, ...]:
    """Probe names used by a condition tree, in document order, without repeats."""
    out: dict[str, None] = {}
    for leaf in iter_leaves(cond):
        out.setdefault(leaf.probe)
    return tuple(out)


def iter_leaves(cond: Condition) -> list[ProbeCondition]:
    """The probe conditions of a tree, in document order."""
    if isinstance(cond, ProbeCondition):
        return [cond]
    children = cond.any if isinstance(cond, AnyCondition) else cond.all
    return [leaf for child in children for leaf in iter_leaves(child)]


def condition_scopes(cond: Condition) -> frozenset[str]:
    """Positions (prompt/response) at which the condition can possibly be true."""
    if isinstance(cond, ProbeCondition):
        return _SCOPES[cond.scope]
    if isinstance(cond, AnyCondition):
        return frozenset().union(*(condition_scopes(c) for c in cond.any))
    out = frozenset({"prompt", "response"})
    for child in cond.all:
        out &= condition_scopes(child)
    return out


def _check_condition(cond: Condition, loc: Loc, pack: PackInfo | None) -> list[Issue]:
    if isinstance(cond, ProbeCondition):
        return _check_leaf(cond, loc, pack)
    issues: list[Issue] = []
    if isinstance(cond, AllCondition):
        for j, child in enumerate(cond.all):
            issues.extend(_check_condition(child, loc + ("all", j), pack))
        if not condition_scopes(cond):
            issues.append(
                Issue(
                    loc + ("all",),
                    "these conditions can never hold at the same position: their "
                    "scopes do not overlap (a prompt-only and a response-only condition)",
                )
            )
    else:
        for j, child in enumerate(cond.any):
            issues.extend(_check_condition(child, loc + ("any", j), pack))
    return issues


def rule_at(rule: Rule) -> str:
    """``response_end`` when the rule's conditions read once at the end, else ``every_token``."""
    return "response_end" if any(leaf.at == "response_end" for leaf in iter_leaves(rule.when)) else "every_token"


def _check_response_end(rule: Rule, loc: Loc) -> list[Issue]:
    """A verdict read once, after the answer: only alerts, on the response, all leaves alike."""
    if rule_at(rule) != "response_end":
        return []
    issues: list[Issue] = []
    for leaf, leaf_loc in _leaves_with_loc(rule.when, loc + ("when",)):
        if leaf.at != "response_end":
            issues.append(Issue(leaf_loc + ("at",), (
                "every condition of a rule must read at the same time: this rule has a "
                "response_end condition, so this one needs at: response_end too")))
        if leaf.scope != "response":
            issues.append(Issue(leaf_loc + ("scope",),
                                "at: response_end reads the end of the response; it needs scope: response"))
    for j, entry in enumerate(rule.then):
        if entry.kind() != "alert":
            issues.append(Issue(loc + ("then", j, entry.kind()), (
                f"a response_end rule can only alert: the answer is out when it is read, so "
                f"there is nothing left to {entry.kind()}")))
    return issues


def _check_leaf(cond: ProbeCondition, loc: Loc, pack: PackInfo | None) -> list[Issue]:
    issues: list[Issue] = []
    calibrated = cond.threshold == "calibrated"
    if calibrated and cond.fpr is None:
        issues.append(
            Issue(
                loc + ("fpr",),
                "threshold: calibrated needs 'fpr', the target false-positive rate "
                "(e.g. fpr: 0.01)",
            )
        )
    if not calibrated and cond.fpr is not None:
        issues.append(Issue(loc + ("fpr",), "'fpr' only goes with threshold: calibrated"))
    if pack is None:
        return issues
    probe = pack.probes.get(cond.probe)
    if probe is None:
        known = ", ".join(sorted(pack.probes)) or "none"
        issues.append(
            Issue(loc + ("probe",), f"unknown probe {cond.probe!r}; the pack has: {known}")
        )
        return issues
    if calibrated and cond.fpr is not None and probe.threshold_at(cond.fpr) is None:
        have = ", ".join(f"{k:g}" for k in sorted(probe.thresholds)) or "none"
        issues.append(
            Issue(
                loc + ("fpr",),
                f"probe {cond.probe!r} has no threshold calibrated at fpr {cond.fpr:g}; "
                f"calibrated rates: {have}",
            )
        )
    return issues
