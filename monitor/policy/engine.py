"""The per-request policy engine: the sidecar calls :meth:`RequestMonitor.step` once
per token position, in order (prompt positions first, then each generated token).

Firing semantics:

- A rule *fires* at a position when its condition is true there, the rule is *armed*
  and it is not cooling down. Firing disarms it; it re-arms at the first position
  where its condition is false (rising-edge triggering: a condition that stays true
  fires once). ``cooldown_tokens: K`` additionally blocks firing at the next K
  positions; a rule that re-armed and is true again when the cooldown ends fires then.
- On firing each action of ``then`` runs in order and produces one alert record
  (``action`` = the action name; in shadow mode ``would_clamp`` / ``would_steer`` /
  ``would_stop``, and nothing is clamped, steered or stopped). In enforce mode an
  intervening action's effect then fires (:meth:`CompiledAction.fire`): ``stop`` stops
  the request, ``clamp``/``steer`` are held in force; the engine has no per-action code.
- ``clamp``/``steer`` with ``tokens: N`` are active at the firing position and the
  next N-1 *response* positions (prompt positions in between are covered but do not
  count); ``rest`` lasts until the request ends. If the rule fires again while its
  clamp is active the duration restarts. When two active clamps set the same feature,
  the one that fired most recently wins (same position: the later rule in the file).
  Active steers add up.
- ``stop`` is sticky: once fired, every later step reports the same message (the first
  stop of the request wins).

The alert's ``probe``/``concept``/``score``/``threshold`` come from the first leaf (in
document order) of the rule's condition that is true at the firing position; the score
is the pooled (windowed) value that was compared with the threshold.

**Verdicts at the end of the response** (``at: response_end``): such a rule's windows are
fed at every in-scope position like any other, but it is tested once, by
:meth:`RequestMonitor.finish`, when the caller knows the response has ended; its
conditions then read the window that ends at the last response token (``tokens: 1``: that
token; a long mean window: the whole answer). It fires at most once per request and only
alerts (validation refuses other actions); the alert names the last response token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from monitor.alerts.model import Alert, FeatureRef, new_alert_id
from monitor.policy.actions import CompiledAction, SteerTarget
from monitor.policy.actions.base import EditPlan
from monitor.policy.compiled import CompiledLeaf, CompiledPolicy, CompiledRule
from monitor.policy.conditions import LeafState, evaluate, in_scope

__all__ = ["RequestContext", "RequestMonitor", "StepResult", "SteerTarget", "FeatureRef"]

FeatureEvidence = Callable[[str], Sequence[FeatureRef]]
"""Given a probe name, the SAE features that drove its score at this position."""


@dataclass(frozen=True)
class RequestContext:
    """Request-independent facts copied onto alerts, and injectable clock/ids."""

    model: str = ""
    """Model spec (e.g. ``smollm2-135m-instruct``)."""
    hook: str = ""
    """Hook point the SAE reads (e.g. ``blocks.15.hook_resid_post``)."""
    excerpt_chars: int = 200
    """How much recent text an alert's ``excerpt`` carries."""
    clock: Callable[[], float] = time.time
    """Wall clock for alert timestamps (epoch seconds)."""
    new_id: Callable[[], str] = new_alert_id
    """Alert id factory (unique ids)."""


_EMPTY_CLAMPS: Mapping[int, float] = MappingProxyType({})


@dataclass(frozen=True)
class StepResult:
    """What the policy decided at one position."""

    alerts: tuple[Alert, ...] = ()
    """Alerts raised at this position (publish them to the alert sink)."""
    effects: tuple[CompiledAction, ...] = ()
    """The effects in force at THIS position, oldest first (enforce mode); each says what
    it does to the residual (:meth:`CompiledAction.apply`)."""
    stop: str | None = None
    """If set, end the response with this message."""
    fired: tuple[str, ...] = ()
    """Ids of the rules that fired at this position."""
    clamps: Mapping[int, float] = field(init=False, compare=False, repr=False)
    """Feature id -> value to clamp at this position (the effects' clamps merged)."""
    steers: tuple[SteerTarget, ...] = field(init=False, compare=False, repr=False)
    """Steering directions active at this position."""

    def __post_init__(self) -> None:
        plan = EditPlan.of(self.effects)
        object.__setattr__(self, "clamps", MappingProxyType(plan.clamps) if plan.clamps else _EMPTY_CLAMPS)
        object.__setattr__(self, "steers", tuple(plan.steers))

    @property
    def intervenes(self) -> bool:
        """Whether the forward pass must be changed at this position."""
        return bool(self.clamps or self.steers or self.stop is not None)


_NOTHING = StepResult()


class _Active:
    """An effect held in force: ``remaining`` positions still to cover (None = rest)."""

    __slots__ = ("action", "order", "rule_index", "remaining")

    def __init__(self, action: CompiledAction, order: int, rule_index: int) -> None:
        self.action = action
        self.order = order
        self.rule_index = rule_index
        self.remaining = action.tokens


class _Firing:
    """The :class:`RequestControl` one firing action gets: stop the request, or hold the
    effect under its (rule, action) key from this position on."""

    __slots__ = ("monitor", "key", "pos", "started")

    def __init__(self, monitor: RequestMonitor, key: tuple[int, int], pos: int,
                 started: set[tuple[int, int]]) -> None:
        self.monitor = monitor
        self.key = key
        self.pos = pos
        self.started = started

    def stop(self, message: str) -> None:
        if self.monitor._stop is None:
            self.monitor._stop = message

    def hold(self, effect: CompiledAction) -> None:
        self.monitor._active[self.key] = _Active(effect, self.pos, self.key[0])
        self.started.add(self.key)


class RequestMonitor:
    """Per-request policy state; one instance per request, used by one thread."""

    def __init__(self, policy: CompiledPolicy, request_id: str, context: RequestContext) -> None:
        self.policy = policy
        """The snapshot this request started with (never swapped mid-request)."""
        self.request_id = request_id
        self.context = context
        self._leaves: list[list[LeafState]] = [
            [LeafState(leaf.window) for leaf in rule.leaves] for rule in policy.rules
        ]
        self._armed = [True] * len(policy.rules)
        self._cool_until = [0] * len(policy.rules)
        self._active: dict[tuple[int, int], _Active] = {}
        self._stop: str | None = None
        self._position = 0
        self._text = ""
        self._needs = policy.probes
        self._last_response: tuple[int, str] | None = None
        """(token index, token) of the latest response position: where an end verdict points."""
        self._finished = False

    def step(
        self,
        scores: Mapping[str, float],
        token_index: int,
        token: str,
        scope: Literal["prompt", "response"],
        feature_evidence: FeatureEvidence | None = None,
    ) -> StepResult:
        """Advance by one position and return what to do at it.

        ``scores`` maps probe name -> probability in [0, 1] and must contain every
        probe the policy uses (:attr:`CompiledPolicy.probes`); a missing or NaN score
        raises ``ValueError`` (treat it as a monitor error, see ``on_monitor_error``).
        ``feature_evidence`` is called (at most once per probe and position) only when
        an alert is raised.
        """
        self._append_text(token)
        pos = self._position
        self._position += 1
        for probe in self._needs:
            value = scores.get(probe)
            if value is None or value != value:  # missing or NaN: a monitor error
                raise ValueError(f"no valid score for probe {probe!r} at token {token_index}")

        if scope == "response":
            self._last_response = (token_index, token)
        fired: list[int] = []
        for slot, (rule, states) in enumerate(zip(self.policy.rules, self._leaves, strict=True)):
            for leaf, state in zip(rule.leaves, states, strict=True):
                if in_scope(leaf, scope):
                    state.update(leaf, float(scores[leaf.probe]))
                else:
                    state.skip()
            if not rule.at_end and self._decide(slot, rule, states, pos):
                fired.append(slot)

        if not fired and not self._active and self._stop is None:
            return _NOTHING
        return self._act(fired, pos, token_index, token, scope, feature_evidence)

    def finish(self, feature_evidence: FeatureEvidence | None = None) -> StepResult:
        """The response has ended: test the ``at: response_end`` rules once, on the windows
        that end at its last token. Returns their alerts (pointing at that token); a
        second call, or a request without response positions, returns nothing."""
        if self._finished or self._last_response is None:
            self._finished = True
            return _NOTHING
        self._finished = True
        token_index, token = self._last_response
        fired: list[int] = []
        for slot, (rule, states) in enumerate(zip(self.policy.rules, self._leaves, strict=True)):
            if not rule.at_end:
                continue
            for leaf, state in zip(rule.leaves, states, strict=True):
                state.true = bool(state.window) and state.run >= leaf.min_consecutive
            if evaluate(rule.condition, states):
                fired.append(slot)
        if not fired:
            return _NOTHING
        alerts: list[Alert] = []
        for slot in fired:
            rule = self.policy.rules[slot]
            leaf = self._primary_leaf(slot)
            found = tuple(feature_evidence(leaf.probe)) if feature_evidence else ()
            alerts.extend(self._alert(rule, leaf, slot, action, token_index, token, found) for action in rule.actions)
        return StepResult(alerts=tuple(alerts), fired=tuple(self.policy.rules[s].id for s in fired))

    @property
    def stopped(self) -> str | None:
        """The stop message, once a ``stop`` action has fired (enforce mode)."""
        return self._stop

    @property
    def excerpt(self) -> str:
        """The last ``excerpt_chars`` characters seen for this request."""
        return self._text[-self.context.excerpt_chars :]

    # -- internals ----------------------------------------------------------------------
    def _decide(self, slot: int, rule: CompiledRule, states: list[LeafState], pos: int) -> bool:
        if not evaluate(rule.condition, states):
            self._armed[slot] = True
            return False
        if not self._armed[slot] or pos < self._cool_until[slot]:
            return False
        self._armed[slot] = False
        self._cool_until[slot] = pos + 1 + rule.cooldown_tokens
        return True

    def _act(
        self,
        fired: list[int],
        pos: int,
        token_index: int,
        token: str,
        scope: str,
        feature_evidence: FeatureEvidence | None,
    ) -> StepResult:
        # Drop clamps/steers whose duration ran out at an earlier position.
        for key in [k for k, a in self._active.items() if a.remaining == 0]:
            del self._active[key]
        enforce = self.policy.mode == "enforce"
        alerts: list[Alert] = []
        started: set[tuple[int, int]] = set()
        evidence: dict[str, tuple[FeatureRef, ...]] = {}
        for slot in fired:
            rule = self.policy.rules[slot]
            leaf = self._primary_leaf(slot)
            if leaf.probe not in evidence:
                found = feature_evidence(leaf.probe) if feature_evidence else ()
                evidence[leaf.probe] = tuple(found)
            for j, action in enumerate(rule.actions):
                alerts.append(
                    self._alert(rule, leaf, slot, action, token_index, token, evidence[leaf.probe])
                )
                if enforce and action.intervenes:
                    action.fire(_Firing(self, (slot, j), pos, started))
        effects: list[CompiledAction] = []
        for key, active in sorted(
            self._active.items(), key=lambda kv: (kv[1].order, kv[1].rule_index)
        ):
            effects.append(active.action)
            if active.remaining is not None and (scope == "response" or key in started):
                active.remaining -= 1
        return StepResult(
            alerts=tuple(alerts),
            effects=tuple(effects),
            stop=self._stop,
            fired=tuple(self.policy.rules[s].id for s in fired),
        )

    def _primary_leaf(self, slot: int) -> CompiledLeaf:
        rule = self.policy.rules[slot]
        states = self._leaves[slot]
        for leaf in rule.leaves:
            if states[leaf.slot].true:
                return leaf
        return rule.leaves[0]  # unreachable: a fired condition has a true leaf

    def _alert(
        self,
        rule: CompiledRule,
        leaf: CompiledLeaf,
        slot: int,
        action: CompiledAction,
        token_index: int,
        token: str,
        features: tuple[FeatureRef, ...],
    ) -> Alert:
        policy = self.policy
        name = action.kind
        if action.intervenes and policy.mode == "shadow":
            name = f"would_{name}"
        return Alert(
            alert_id=self.context.new_id(),
            kind="rule",
            ts=self.context.clock(),
            request_id=self.request_id,
            rule_id=rule.id,
            policy_name=policy.name,
            policy_version=policy.version,
            mode=policy.mode,
            concept=leaf.concept,
            probe=leaf.probe,
            score=self._leaves[slot][leaf.slot].value,
            threshold=leaf.threshold,
            token_index=token_index,
            token=token,
            action=name,
            severity=action.severity or rule.severity,
            features=features,
            model=self.context.model,
            hook=self.context.hook,
            excerpt=self.excerpt,
            detail=action.detail,
        )

    def _append_text(self, token: str) -> None:
        limit = self.context.excerpt_chars
        text = self._text + token
        self._text = text[-limit:] if len(text) > 2 * limit else text
