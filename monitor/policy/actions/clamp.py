"""``clamp``: hold SAE features at a value inside the forward pass.

YAML (explicit features, or the probe's top-k features from the pack)::

    then:
      - clamp: {features: [812, 1533], value: 0.0, tokens: 32}
      - clamp: {top_k: 8, probe: unsafe_code, value: 0.0, tokens: rest}

``tokens: N`` covers the position where the rule fired plus the next N-1 *response*
positions (prompt positions in between are clamped too but do not count); ``rest``
lasts until the response ends. If the same rule fires again while its clamp is still
active, the duration restarts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from pydantic import Field

from monitor.policy.actions.base import (
    ActionContext,
    ActionKind,
    CompiledAction,
    Duration,
    RequestControl,
    ResidualEdit,
    check_feature,
    check_probe,
    tokens_of,
)
from monitor.policy.base import PolicyModel
from monitor.policy.issues import Issue


class ClampSpec(PolicyModel):
    """Settings of a ``clamp`` action. Give exactly one of ``features`` or ``top_k``."""

    features: list[int] | None = Field(
        default=None,
        min_length=1,
        description="Explicit SAE feature ids to clamp (each 0 .. d_sae-1).",
    )
    top_k: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="Clamp the probe's k highest-contributing features, as ranked in "
        "the guard pack (probes.json top_features).",
    )
    probe: str | None = Field(
        default=None,
        description="Whose top_k features to clamp. May be left out when the rule's "
        "`when` names exactly one probe.",
    )
    value: float = Field(
        default=0.0,
        allow_inf_nan=False,
        description="Activation the features are held at (0.0 switches them off).",
    )
    tokens: Duration = Field(
        description="How long: a number of tokens (the firing position plus the next "
        "N-1 response tokens) or 'rest' for the rest of the response."
    )


def _probe_for_top_k(spec: ClampSpec, ctx: ActionContext) -> str | None:
    if spec.probe is not None:
        return spec.probe
    return ctx.rule_probes[0] if len(ctx.rule_probes) == 1 else None


def validate(spec: ClampSpec, ctx: ActionContext) -> list[Issue]:
    """Exactly one of features/top_k; ids in range; the probe exists and has k features."""
    issues: list[Issue] = []
    if (spec.features is None) == (spec.top_k is None):
        issues.append(Issue((), "give exactly one of 'features' (ids) or 'top_k'"))
        return issues
    if spec.features is not None:
        if spec.probe is not None:
            issues.append(Issue(("probe",), "'probe' only goes with 'top_k'"))
        for i, fid in enumerate(spec.features):
            if fid < 0:
                issues.append(Issue(("features", i), f"feature id {fid} is negative"))
            else:
                issues.extend(check_feature(fid, ctx, ("features", i)))
        return issues
    probe = _probe_for_top_k(spec, ctx)
    if probe is None:
        issues.append(
            Issue(
                ("top_k",),
                "the rule uses several probes: name the one whose top_k features "
                "to clamp with 'probe'",
            )
        )
        return issues
    if spec.probe is not None:
        probe_issues = check_probe(probe, ctx, ("probe",))
        if probe_issues:
            return probe_issues
    elif ctx.pack is not None and probe not in ctx.pack.probes:
        return []  # the rule's own unknown probe is reported at its `when`
    if ctx.pack is not None and spec.top_k is not None:
        have = len(ctx.pack.probes[probe].top_features)
        if spec.top_k > have:
            issues.append(
                Issue(
                    ("top_k",),
                    f"top_k {spec.top_k} exceeds the {have} ranked features the pack "
                    f"has for probe {probe!r}",
                )
            )
    return issues


@dataclass(frozen=True)
class ClampEffect(CompiledAction):
    """Holds SAE features at values while in force (error-preserving, in the guard)."""

    clamps: Mapping[int, float] = field(default_factory=lambda: MappingProxyType({}))
    """Feature id -> value to clamp it to."""

    def fire(self, request: RequestControl) -> None:
        request.hold(self)

    def apply(self, edit: ResidualEdit) -> None:
        edit.clamp(self.clamps)


def compile_clamp(spec: ClampSpec, ctx: ActionContext) -> ClampEffect:
    """Resolve ``top_k`` to feature ids from the pack."""
    if spec.features is not None:
        ids = tuple(dict.fromkeys(spec.features))
        what = "features " + ",".join(map(str, ids))
    else:
        probe = _probe_for_top_k(spec, ctx)
        assert ctx.pack is not None and probe is not None and spec.top_k is not None
        ids = ctx.pack.probes[probe].top_features[: spec.top_k]
        what = f"top {spec.top_k} features of {probe} (" + ",".join(map(str, ids)) + ")"
    tokens = tokens_of(spec.tokens)
    span = "rest of response" if tokens is None else f"{tokens} tokens"
    return ClampEffect(
        kind="clamp",
        intervenes=True,
        clamps=MappingProxyType({fid: spec.value for fid in ids}),
        tokens=tokens,
        detail=f"clamp {what} to {spec.value:g} for {span}",
    )


KIND: ActionKind[ClampSpec] = ActionKind(
    name="clamp", spec_type=ClampSpec, validate=validate, compile=compile_clamp
)
