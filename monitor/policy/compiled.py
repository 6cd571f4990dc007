"""A policy resolved against the guard pack: immutable, ready to monitor requests.

:func:`compile_policy` turns a validated :class:`~monitor.policy.schema.Policy` into a
:class:`CompiledPolicy` (calibrated thresholds looked up, ``top_k`` resolved to feature
ids, disabled rules dropped). A compiled policy never changes; per-request state lives
in the :class:`~monitor.policy.engine.RequestMonitor` that
:meth:`CompiledPolicy.new_request` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from monitor.policy.actions import ActionContext, CompiledAction, get_action
from monitor.policy.actions.alert import SEVERITY_ORDER
from monitor.policy.issues import SemanticError
from monitor.policy.packinfo import PackInfo
from monitor.policy.schema import AnyCondition, Condition, Policy, ProbeCondition
from monitor.policy.validate import condition_probes, rule_at, validate_policy

if TYPE_CHECKING:
    from monitor.policy.engine import RequestContext, RequestMonitor

Scope = Literal["prompt", "response", "both"]


@dataclass(frozen=True)
class CompiledLeaf:
    """A probe condition with its threshold resolved."""

    slot: int
    """Index of this leaf's state in the rule's leaf-state list (document order)."""
    probe: str
    concept: str
    threshold: float
    """Resolved threshold; the pooled score passes when ``score >= threshold``."""
    threshold_source: str
    """``"0.8"`` or ``"calibrated@fpr=0.01"`` (for people reading alerts)."""
    window: int
    reduce: Literal["mean", "max"]
    min_consecutive: int
    scope: Scope
    at: Literal["every_token", "response_end"] = "every_token"


@dataclass(frozen=True)
class CompiledGroup:
    """``any`` / ``all`` over sub-conditions."""

    op: Literal["any", "all"]
    children: tuple[CompiledCondition, ...]


CompiledCondition = CompiledLeaf | CompiledGroup


@dataclass(frozen=True)
class CompiledRule:
    """A rule ready to run."""

    index: int
    """Position in the file (0-based, counting disabled rules too)."""
    id: str
    condition: CompiledCondition
    leaves: tuple[CompiledLeaf, ...]
    """The condition's leaves in document order (``leaf.slot`` indexes this)."""
    actions: tuple[CompiledAction, ...]
    cooldown_tokens: int
    severity: str
    """Highest severity among the rule's ``alert`` actions (``info`` if none); put on
    the records of its clamp/steer/stop actions."""
    at_end: bool = False
    """The rule reads its conditions once, when the response has ended (``at:
    response_end``); it never fires during the response."""


@dataclass(frozen=True)
class CompiledPolicy:
    """An immutable policy snapshot; create one :class:`RequestMonitor` per request."""

    name: str
    version: str
    """sha256 hex digest of the policy file's bytes."""
    mode: Literal["enforce", "shadow"]
    on_monitor_error: Literal["fail_open", "fail_closed"]
    rules: tuple[CompiledRule, ...]
    """Enabled rules, in file order."""
    source: str = ""
    """Where the policy came from (a path, or ``<string>``)."""
    description: str = ""

    @property
    def probes(self) -> tuple[str, ...]:
        """Probe names the policy reads (a step's ``scores`` must contain them)."""
        out: dict[str, None] = {}
        for rule in self.rules:
            for leaf in rule.leaves:
                out.setdefault(leaf.probe)
        return tuple(out)

    def new_request(self, request_id: str, context: RequestContext | None = None) -> RequestMonitor:
        """Start monitoring one request with this policy snapshot.

        The returned monitor holds all per-request state (windows, counters, active
        clamps) and is used by one thread; it keeps this snapshot even if the store
        reloads the policy meanwhile.
        """
        from monitor.policy.engine import RequestContext, RequestMonitor

        return RequestMonitor(self, request_id, context or RequestContext())


def compile_policy(
    policy: Policy, pack: PackInfo, version: str, source: str = "<string>"
) -> CompiledPolicy:
    """Validate ``policy`` against ``pack`` and compile it.

    Raises :class:`~monitor.policy.issues.SemanticError` listing every problem.
    """
    issues = validate_policy(policy, pack)
    if issues:
        raise SemanticError(issues)
    rules: list[CompiledRule] = []
    for index, rule in enumerate(policy.rules):
        if not rule.enabled:
            continue
        leaves: list[CompiledLeaf] = []
        condition = _compile_condition(rule.when, pack, leaves)
        ctx = ActionContext(pack=pack, rule_probes=condition_probes(rule.when))
        actions = tuple(get_action(e.kind()).compile(e.spec(), ctx) for e in rule.then)
        severities = [a.severity for a in actions if a.severity is not None]
        rules.append(
            CompiledRule(
                index=index,
                id=rule.id,
                condition=condition,
                leaves=tuple(leaves),
                actions=actions,
                cooldown_tokens=rule.cooldown_tokens,
                severity=max(severities, key=SEVERITY_ORDER.index) if severities else "info",
                at_end=rule_at(rule) == "response_end",
            )
        )
    return CompiledPolicy(
        name=policy.name,
        version=version,
        mode=policy.mode,
        on_monitor_error=policy.on_monitor_error,
        rules=tuple(rules),
        source=source,
        description=policy.description,
    )


def _compile_condition(
    cond: Condition, pack: PackInfo, leaves: list[CompiledLeaf]
) -> CompiledCondition:
    if isinstance(cond, ProbeCondition):
        probe = pack.probes[cond.probe]
        if cond.threshold == "calibrated":
            assert cond.fpr is not None
            threshold = probe.threshold_at(cond.fpr)
            assert threshold is not None
            source = f"calibrated@fpr={cond.fpr:g}"
        else:
            threshold = float(cond.threshold)
            source = f"{threshold:g}"
        leaf = CompiledLeaf(
            slot=len(leaves),
            probe=cond.probe,
            concept=probe.concept,
            threshold=threshold,
            threshold_source=source,
            window=cond.window.tokens,
            reduce=cond.window.reduce,
            min_consecutive=cond.min_consecutive,
            scope=cond.scope,
            at=cond.at,
        )
        leaves.append(leaf)
        return leaf
    if isinstance(cond, AnyCondition):
        return CompiledGroup("any", tuple(_compile_condition(c, pack, leaves) for c in cond.any))
    return CompiledGroup("all", tuple(_compile_condition(c, pack, leaves) for c in cond.all))
