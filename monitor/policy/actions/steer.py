"""``steer``: add a direction to the residual stream.

YAML (a SAE feature's decoder direction, or a probe's direction)::

    then:
      - steer: {feature: 311, strength: -4.0, tokens: 16}
      - steer: {probe: deception, strength: -2.0, tokens: rest}

Durations count like ``clamp`` (firing position plus the next N-1 response tokens).
The engine only reports *what* to steer (:class:`SteerTarget`); the sidecar turns a
feature id into ``W_dec[id]`` and a probe name into the probe's direction.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from monitor.policy.actions.base import (
    ActionContext,
    ActionKind,
    CompiledAction,
    Duration,
    RequestControl,
    ResidualEdit,
    SteerTarget,
    check_feature,
    check_probe,
    tokens_of,
)
from monitor.policy.base import PolicyModel
from monitor.policy.issues import Issue


class SteerSpec(PolicyModel):
    """Settings of a ``steer`` action. Give exactly one of ``feature`` or ``probe``."""

    feature: int | None = Field(
        default=None, ge=0, description="SAE feature id whose decoder direction to add."
    )
    probe: str | None = Field(
        default=None, description="Probe whose direction (in residual space) to add."
    )
    strength: float = Field(
        allow_inf_nan=False,
        description="Multiplier of the direction; negative values steer away.",
    )
    tokens: Duration = Field(
        description="How long: a number of tokens or 'rest' for the rest of the response."
    )


def validate(spec: SteerSpec, ctx: ActionContext) -> list[Issue]:
    """Exactly one target; the feature id is in range or the probe exists."""
    if (spec.feature is None) == (spec.probe is None):
        return [Issue((), "give exactly one of 'feature' (an id) or 'probe' (a name)")]
    if spec.feature is not None:
        return check_feature(spec.feature, ctx, ("feature",))
    assert spec.probe is not None
    return check_probe(spec.probe, ctx, ("probe",))


@dataclass(frozen=True)
class SteerEffect(CompiledAction):
    """Adds ``strength *`` a feature's or a probe's direction while in force."""

    steers: tuple[SteerTarget, ...] = ()
    """The directions it adds."""

    def fire(self, request: RequestControl) -> None:
        request.hold(self)

    def apply(self, edit: ResidualEdit) -> None:
        edit.steer(self.steers)


def compile_steer(spec: SteerSpec, ctx: ActionContext) -> SteerEffect:  # noqa: ARG001
    target: int | str = spec.feature if spec.feature is not None else str(spec.probe)
    tokens = tokens_of(spec.tokens)
    span = "rest of response" if tokens is None else f"{tokens} tokens"
    what = f"feature {target}" if isinstance(target, int) else f"probe {target}"
    return SteerEffect(
        kind="steer",
        intervenes=True,
        steers=(SteerTarget(target, spec.strength),),
        tokens=tokens,
        detail=f"steer along {what} x{spec.strength:g} for {span}",
    )


KIND: ActionKind[SteerSpec] = ActionKind(
    name="steer", spec_type=SteerSpec, validate=validate, compile=compile_steer
)
