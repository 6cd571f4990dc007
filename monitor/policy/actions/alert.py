"""``alert``: publish an alert record (to Redis Streams via the alert sink).

YAML::

    then:
      - alert: {severity: high}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from monitor.policy.actions.base import ActionContext, ActionKind, CompiledAction
from monitor.policy.base import PolicyModel
from monitor.policy.issues import Issue

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITY_ORDER: tuple[str, ...] = ("info", "low", "medium", "high", "critical")


class AlertSpec(PolicyModel):
    """Settings of an ``alert`` action."""

    severity: Severity = Field(
        description="How urgent the alert is: info, low, medium, high or critical. "
        "Copied onto the alert record; subscribers filter on it."
    )


def validate(spec: AlertSpec, ctx: ActionContext) -> list[Issue]:  # noqa: ARG001
    """Nothing to check beyond the schema."""
    return []


@dataclass(frozen=True)
class AlertEffect(CompiledAction):
    """Only the alert record the engine publishes for every action; nothing else."""


def compile_alert(spec: AlertSpec, ctx: ActionContext) -> AlertEffect:  # noqa: ARG001
    """An alert never intervenes; it behaves the same in shadow mode."""
    return AlertEffect(kind="alert", intervenes=False, severity=spec.severity)


KIND: ActionKind[AlertSpec] = ActionKind(
    name="alert", spec_type=AlertSpec, validate=validate, compile=compile_alert
)
