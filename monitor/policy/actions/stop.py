"""``stop``: end the response with a message.

YAML::

    then:
      - stop: {message: "I can't help with that."}

Once a stop fires, every later step of the same request reports the same message
(the first stop wins). In shadow mode nothing stops; an alert with
``action = would_stop`` is published instead.
"""

from __future__ import annotations

from pydantic import Field

from monitor.policy.actions.base import ActionContext, ActionKind, CompiledAction
from monitor.policy.base import PolicyModel
from monitor.policy.issues import Issue


class StopSpec(PolicyModel):
    """Settings of a ``stop`` action."""

    message: str = Field(
        min_length=1,
        max_length=2000,
        description="Text sent to the user in place of the rest of the response.",
    )


def validate(spec: StopSpec, ctx: ActionContext) -> list[Issue]:  # noqa: ARG001
    """Nothing to check beyond the schema."""
    return []


def compile_stop(spec: StopSpec, ctx: ActionContext) -> CompiledAction:  # noqa: ARG001
    return CompiledAction(
        kind="stop", intervenes=True, stop_message=spec.message, detail="stop response"
    )


KIND: ActionKind[StopSpec] = ActionKind(
    name="stop", spec_type=StopSpec, validate=validate, compile=compile_stop
)
