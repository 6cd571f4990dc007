"""The policy file schema (pydantic v2): what users may write in ``policies/*.yaml``.

Shape::

    name: default
    mode: enforce              # enforce | shadow
    on_monitor_error: fail_open
    rules:
      - id: deception-alert
        when:                  # a probe condition, or {any: [...]}, or {all: [...]}
          probe: deception
          threshold: calibrated
          fpr: 0.01
          window: {tokens: 4, reduce: mean}
          min_consecutive: 1
          scope: response
        then:
          - alert: {severity: high}

Only the file's own structure is checked here; references to the guard pack (probe
names, feature ids, calibrated rates) are checked by :mod:`monitor.policy.validate`.
``policies/schema.json`` is generated from these models (``saeguard policy schema``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    WithJsonSchema,
    model_validator,
)

from monitor.policy.actions.alert import AlertSpec
from monitor.policy.actions.clamp import ClampSpec
from monitor.policy.actions.steer import SteerSpec
from monitor.policy.actions.stop import StopSpec
from monitor.policy.base import PolicyModel

#: Largest window / run length accepted, in tokens.
MAX_WINDOW = 4096


def _threshold(value: object) -> float | Literal["calibrated"]:
    if value == "calibrated":
        return "calibrated"
    if isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= 1.0:
        return float(value)
    raise ValueError("expected a number between 0 and 1, or 'calibrated'")


Threshold = Annotated[
    float | Literal["calibrated"],
    PlainValidator(_threshold),
    WithJsonSchema(
        {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"const": "calibrated"}]}
    ),
]


class Window(PolicyModel):
    """How per-token scores are pooled before the threshold test."""

    tokens: int = Field(
        default=1,
        ge=1,
        le=MAX_WINDOW,
        description="Pool the last N in-scope tokens (fewer at the start of the scope).",
    )
    reduce: Literal["mean", "max"] = Field(
        default="mean", description="How the window is pooled: mean or max."
    )


class ProbeCondition(PolicyModel):
    """True at a position when the pooled probe score has been >= threshold for
    ``min_consecutive`` in-scope positions in a row."""

    probe: str = Field(min_length=1, description="Probe name from the guard pack (e.g. deception).")
    threshold: Threshold = Field(
        description="Score threshold in [0, 1] (compared with >=), or 'calibrated' to "
        "use the pack's threshold calibrated at `fpr`."
    )
    fpr: float | None = Field(
        default=None,
        gt=0.0,
        lt=1.0,
        description="Target false-positive rate of a calibrated threshold (e.g. 0.01); "
        "must be one the pack was calibrated at. Only with threshold: calibrated. The rate "
        "holds only with the probe's calibrated window (probes.json runtime_window) on "
        "response tokens.",
    )
    window: Window = Field(
        default_factory=Window,
        description="Pooling of the last N tokens (default: the current token alone). With "
        "threshold: calibrated, use the probe's calibrated window (probes.json runtime_window; "
        "`saeguard policy check --pack` warns otherwise).",
    )
    min_consecutive: int = Field(
        default=1,
        ge=1,
        le=MAX_WINDOW,
        description="How many in-scope positions in a row must pass the threshold.",
    )
    scope: Literal["prompt", "response", "both"] = Field(
        default="response",
        description="Which positions the condition looks at: prompt, response or both.",
    )
    at: Literal["every_token", "response_end"] = Field(
        default="every_token",
        description="When the condition is tested: at every in-scope position (default), or "
        "once, when the response has ended, on the window that ends at its last token "
        "(tokens: 1 reads the last token; a window as long as the answer, e.g. 4096, reads "
        "the mean over the whole answer). A response_end rule can only alert (the answer "
        "is out), needs scope: response, and all its conditions must read at response_end.",
    )


class AnyCondition(PolicyModel):
    """True when at least one sub-condition is true."""

    any: list[Condition] = Field(min_length=1, description="Sub-conditions (OR).")


class AllCondition(PolicyModel):
    """True when every sub-condition is true at the same position."""

    all: list[Condition] = Field(min_length=1, description="Sub-conditions (AND).")


def _condition_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        if "any" in value:
            return "<any>"
        if "all" in value:
            return "<all>"
        return "<probe>"
    if isinstance(value, ProbeCondition | AnyCondition | AllCondition):
        return {ProbeCondition: "<probe>", AnyCondition: "<any>", AllCondition: "<all>"}[
            type(value)
        ]
    return None


Condition = Annotated[
    Annotated[ProbeCondition, Tag("<probe>")]
    | Annotated[AnyCondition, Tag("<any>")]
    | Annotated[AllCondition, Tag("<all>")],
    Discriminator(
        _condition_tag,
        custom_error_type="condition",
        custom_error_message="expected a condition: a mapping with 'probe', or "
        "{any: [...]}, or {all: [...]}",
    ),
]

AnyCondition.model_rebuild()
AllCondition.model_rebuild()

#: Tags of the condition union -> model. Tags appear in pydantic error locations and
#: are dropped when a location is shown to users (they cannot clash with YAML keys).
CONDITION_TAGS: dict[str, type[PolicyModel]] = {
    "<probe>": ProbeCondition,
    "<any>": AnyCondition,
    "<all>": AllCondition,
}


def _entry_schema(schema: dict[str, Any]) -> None:
    """JSON schema: exactly one property, and its value is the settings object."""
    schema["minProperties"] = 1
    schema["maxProperties"] = 1
    for prop in schema.get("properties", {}).values():
        refs = [s for s in prop.pop("anyOf", []) if s.get("type") != "null"]
        if refs:
            prop.update(refs[0])
        prop.pop("default", None)


class ActionEntry(PolicyModel):
    """One item of ``then``: a mapping with exactly one action name as its key."""

    model_config = PolicyModel.model_config | {"json_schema_extra": _entry_schema}

    alert: AlertSpec | None = Field(default=None, description="Publish an alert.")
    clamp: ClampSpec | None = Field(
        default=None, description="Hold SAE features at a value for a number of tokens."
    )
    steer: SteerSpec | None = Field(
        default=None, description="Add a feature or probe direction to the residual."
    )
    stop: StopSpec | None = Field(default=None, description="End the response.")

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if isinstance(data, dict):
            names = [k for k in data if k in cls.model_fields]
            if len(names) > 1:
                raise ValueError(
                    "each item of 'then' holds exactly one action; found "
                    + " and ".join(names)
                    + " (put each in its own list item)"
                )
            if not data:
                raise ValueError("expected one action: alert, clamp, steer or stop")
            if len(names) == 1 and data[names[0]] is None:
                raise ValueError(f"'{names[0]}' needs its settings as a mapping")
        return data

    def kind(self) -> str:
        """The action name set in this entry."""
        for name in type(self).model_fields:
            if getattr(self, name) is not None:
                return name
        raise ValueError("empty action entry")  # unreachable after validation

    def spec(self) -> PolicyModel:
        """The settings model of the action set in this entry."""
        value = getattr(self, self.kind())
        assert isinstance(value, PolicyModel)
        return value


class Rule(PolicyModel):
    """When a condition becomes true, take actions."""

    id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        max_length=80,
        description="Unique rule id (letters, digits, _ . -); appears on every alert.",
    )
    description: str = Field(default="", description="Free text for people.")
    enabled: bool = Field(default=True, description="Set false to switch the rule off.")
    when: Condition = Field(description="The condition that fires the rule.")
    then: list[ActionEntry] = Field(
        min_length=1, description="Actions taken when the rule fires, in order."
    )
    cooldown_tokens: int = Field(
        default=0,
        ge=0,
        le=1_000_000,
        description="After firing, the rule cannot fire again for this many positions.",
    )


class Policy(PolicyModel):
    """A policy file."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        max_length=80,
        description="Policy name; appears on every alert.",
    )
    description: str = Field(default="", description="Free text for people.")
    mode: Literal["enforce", "shadow"] = Field(
        description="enforce: take actions. shadow: evaluate and alert what would have "
        "happened (action would_clamp / would_steer / would_stop), change nothing."
    )
    on_monitor_error: Literal["fail_open", "fail_closed"] = Field(
        description="If scoring fails for a request: fail_open lets the response "
        "continue unmonitored (and alerts); fail_closed stops it."
    )
    rules: list[Rule] = Field(description="The rules, evaluated in order at every token.")


def policy_json_schema() -> dict[str, Any]:
    """The JSON schema of a policy file (for editors and ``policies/schema.json``)."""
    schema = Policy.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://saeguard.local/policies/schema.json",
        **schema,
    }


def policy_json_schema_text() -> str:
    """:func:`policy_json_schema` as the exact text committed in policies/schema.json."""
    return json.dumps(policy_json_schema(), indent=2, sort_keys=True) + "\n"
