"""What every action plug-in shares: the compiled form the engine runs, the context a
plug-in validates against, and the ``tokens`` duration type.

An action plug-in (one module per action) provides a pydantic *spec* model (what users
write under ``then: - <name>: {...}``), a ``validate`` function that reports problems
against the guard pack, and a ``compile`` function that resolves the spec into a
:class:`CompiledAction`. The engine only ever sees :class:`CompiledAction`; it needs no
per-action code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Generic, Literal, NamedTuple, TypeVar

from pydantic import PlainValidator, WithJsonSchema

from monitor.policy.base import PolicyModel
from monitor.policy.issues import Issue
from monitor.policy.packinfo import PackInfo

#: Largest duration (tokens) accepted; longer means ``rest``.
MAX_TOKENS = 1_000_000


def _duration(value: object) -> int | Literal["rest"]:
    if value == "rest":
        return "rest"
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_TOKENS:
        return value
    raise ValueError(f"expected a whole number of tokens (1..{MAX_TOKENS}) or 'rest'")


Duration = Annotated[
    int | Literal["rest"],
    PlainValidator(_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_TOKENS},
                {"const": "rest"},
            ]
        }
    ),
]
"""``tokens:`` of clamp/steer: a count, or ``rest`` (until the response ends)."""


class SteerTarget(NamedTuple):
    """One steering direction active at a position."""

    target: int | str
    """A SAE feature id (int: add ``strength * W_dec[target]``) or a probe name (str:
    steer along that probe's direction)."""
    strength: float
    """Multiplier of the direction added to the residual."""


@dataclass(frozen=True)
class CompiledAction:
    """An action resolved against the pack; what the engine executes on firing."""

    kind: str
    """The registry key (``alert``, ``clamp``, ``steer``, ``stop``)."""
    intervenes: bool
    """True for actions that change generation; in shadow mode they only alert, with
    ``action = "would_<kind>"``."""
    severity: str | None = None
    """Alert severity (``alert`` actions only)."""
    clamps: Mapping[int, float] = field(default_factory=lambda: MappingProxyType({}))
    """Feature id -> value to clamp it to (``clamp`` only)."""
    steers: tuple[SteerTarget, ...] = ()
    """Steering directions (``steer`` only)."""
    stop_message: str | None = None
    """Text that ends the response (``stop`` only)."""
    tokens: int | None = None
    """Duration of a clamp/steer in tokens; None means the rest of the response."""
    detail: str = ""
    """Short human-readable summary put on the alert (``features 12,40 -> 0.0``)."""


@dataclass(frozen=True)
class ActionContext:
    """What a plug-in may consult while validating/compiling one action."""

    pack: PackInfo | None
    """The guard pack; None when only the file's own structure is checked."""
    rule_probes: tuple[str, ...]
    """Probe names used by the rule's ``when`` (document order, no duplicates)."""


S = TypeVar("S", bound=PolicyModel)


@dataclass(frozen=True)
class ActionKind(Generic[S]):
    """A registered action plug-in."""

    name: str
    """The key users write in YAML (``then: - clamp: ...``)."""
    spec_type: type[S]
    """The pydantic model of the action's settings."""
    validate: Callable[[S, ActionContext], list[Issue]]
    """Problems with a spec; ``Issue.loc`` is relative to the action's mapping."""
    compile: Callable[[S, ActionContext], CompiledAction]
    """Resolve a *valid* spec against a pack (``ctx.pack`` is not None)."""


def tokens_of(duration: int | Literal["rest"]) -> int | None:
    """``"rest"`` -> None, a count -> itself."""
    return None if duration == "rest" else duration


def check_probe(probe: str, ctx: ActionContext, loc: tuple[str | int, ...]) -> list[Issue]:
    """An issue if the pack is known and has no probe called ``probe``."""
    if ctx.pack is None or probe in ctx.pack.probes:
        return []
    known = ", ".join(sorted(ctx.pack.probes)) or "none"
    return [Issue(loc, f"unknown probe {probe!r}; the pack has: {known}")]


def check_feature(feature: int, ctx: ActionContext, loc: tuple[str | int, ...]) -> list[Issue]:
    """An issue if the pack is known and ``feature`` is not a valid SAE feature id."""
    if ctx.pack is None or 0 <= feature < ctx.pack.d_sae:
        return []
    return [Issue(loc, f"feature id {feature} out of range; expected 0..{ctx.pack.d_sae - 1}")]
