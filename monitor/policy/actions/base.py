"""What every action plug-in shares: the compiled form the engine runs, the context a
plug-in validates against, and the ``tokens`` duration type.

An action plug-in (one module per action) provides a pydantic *spec* model (what users
write under ``then: - <name>: {...}``), a ``validate`` function that reports problems
against the guard pack, and a ``compile`` function that resolves the spec into its typed
effect, a :class:`CompiledAction` subclass that carries its own application
(:meth:`CompiledAction.fire`, :meth:`CompiledAction.apply`). The engine and the guard only
ever see :class:`CompiledAction`; they need no per-action code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Generic, Literal, NamedTuple, Protocol, TypeVar

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


class RequestControl(Protocol):
    """What an effect may do to its request when its rule fires (enforce mode); the policy
    engine implements it."""

    def stop(self, message: str) -> None:
        """End the response with ``message`` (the first stop of a request wins)."""
        ...

    def hold(self, effect: CompiledAction) -> None:
        """Keep ``effect`` in force for its ``tokens`` (restarting if it already is)."""
        ...


class ResidualEdit(Protocol):
    """What an effect in force may do to the residual at one position; the guard carries
    it out (one error-preserving clamp of all features, then the steers in order)."""

    def clamp(self, values: Mapping[int, float]) -> None:
        """Hold SAE features at values (a later effect's value for a feature wins)."""
        ...

    def steer(self, targets: Sequence[SteerTarget]) -> None:
        """Add ``strength *`` each target's direction."""
        ...


@dataclass(frozen=True)
class CompiledAction:
    """An action resolved against the pack: a typed *effect* the engine runs when its rule
    fires. Each plug-in subclasses it with its own data and says what it does:
    :meth:`fire` (once, when the rule fires in enforce mode) and :meth:`apply` (at every
    position while it is held). The engine and the guard need no per-action code."""

    kind: str
    """The registry key (``alert``, ``clamp``, ``steer``, ``stop``)."""
    intervenes: bool
    """True for actions that change generation; in shadow mode they only alert, with
    ``action = "would_<kind>"``."""
    severity: str | None = None
    """Alert severity (``alert`` actions only)."""
    tokens: int | None = None
    """How long a held effect lasts, in tokens; None means the rest of the response."""
    detail: str = ""
    """Short human-readable summary put on the alert (``features 12,40 -> 0.0``)."""

    def fire(self, request: RequestControl) -> None:
        """What firing does besides the alert (enforce mode, ``intervenes`` only)."""

    def apply(self, edit: ResidualEdit) -> None:
        """What this effect does to the residual at a position while it is held."""


@dataclass
class EditPlan:
    """A :class:`ResidualEdit` that records: the clamps and steers of the effects in force
    at one position, merged in order (what :class:`~monitor.policy.engine.StepResult`
    reports and the guard applies)."""

    clamps: dict[int, float] = field(default_factory=dict)
    """Feature id -> value (later effects win)."""
    steers: list[SteerTarget] = field(default_factory=list)
    """Steering directions, in order (they add up)."""

    def clamp(self, values: Mapping[int, float]) -> None:
        self.clamps.update(values)

    def steer(self, targets: Sequence[SteerTarget]) -> None:
        self.steers.extend(targets)

    @classmethod
    def of(cls, effects: Sequence[CompiledAction]) -> EditPlan:
        """The merged edit of ``effects`` (oldest first)."""
        plan = cls()
        for effect in effects:
            effect.apply(plan)
        return plan


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
