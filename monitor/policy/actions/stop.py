"""``stop``: end the response with a message.

YAML::

    then:
      - stop: {message: "I can't help with that."}

Once a stop fires, every later step of the same request reports the same message
(the first stop wins). In shadow mode nothing stops; an alert with
``action = would_stop`` is published instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from monitor.policy.actions.base import ActionContext, ActionKind, CompiledAction, RequestControl
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


@dataclass(frozen=True)
class StopEffect(CompiledAction):
    """Ends the response with :attr:`message` (sticky: the first stop of a request wins)."""

    message: str = ""
    """Text that ends the response."""

    def fire(self, request: RequestControl) -> None:
        request.stop(self.message)


def compile_stop(spec: StopSpec, ctx: ActionContext) -> StopEffect:  # noqa: ARG001
    return StopEffect(kind="stop", intervenes=True, message=spec.message, detail="stop response")


KIND: ActionKind[StopSpec] = ActionKind(
    name="stop", spec_type=StopSpec, validate=validate, compile=compile_stop
)
