"""Recorded score sequences ("cases") to try a policy on, for ``saeguard policy test``.

A cases file::

    pack:                      # optional: a pack description (else --pack DIR)
      d_sae: 2048
      probes:
        deception: {thresholds: {0.01: 0.8}, top_features: [12, 40, 7]}
    cases:
      - name: deceptive answer
        steps:                 # one per token position, in order
          - {token: "Hi", scope: prompt, scores: {deception: 0.1}}
          - {token: " sure", scores: {deception: 0.93}}     # scope defaults to response
        expect:                # optional: the firings you expect (rule id, position)
          - {rule: deception-alert, token_index: 1}

Positions (``token_index``) count from 0 over all steps of a case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from monitor.policy.base import PolicyModel
from monitor.policy.compiled import CompiledPolicy
from monitor.policy.engine import RequestContext
from monitor.policy.issues import PolicyError, PolicyIssue
from monitor.policy.loader import validation_issues
from monitor.policy.packinfo import StaticPackInfo
from monitor.policy.yamlmap import YamlSyntaxError, parse_yaml


class CaseStep(PolicyModel):
    """One token position."""

    token: str = Field(default="", description="The token text.")
    scope: Literal["prompt", "response"] = Field(
        default="response", description="Whether the position is in the prompt or response."
    )
    scores: dict[str, float] = Field(description="Probe name -> score in [0, 1].")


class Expected(PolicyModel):
    """A firing the case expects."""

    rule: str = Field(description="Rule id.")
    token_index: int = Field(ge=0, description="Position where it fires.")


class Case(PolicyModel):
    """A recorded request."""

    name: str = Field(description="Shown in the output.")
    steps: list[CaseStep] = Field(min_length=1, description="Positions, in order.")
    expect: list[Expected] | None = Field(
        default=None, description="If given, the exact list of expected firings."
    )


class CaseProbe(PolicyModel):
    """A probe in an inline pack description."""

    concept: str | None = Field(default=None, description="Concept (default: the name).")
    thresholds: dict[float, float] = Field(
        default_factory=dict, description="Target FPR -> calibrated threshold."
    )
    top_features: list[int] = Field(default_factory=list, description="Ranked feature ids.")


class CasePack(PolicyModel):
    """An inline pack description, so a cases file can stand alone."""

    d_sae: int = Field(ge=1, description="Number of SAE features.")
    probes: dict[str, CaseProbe] = Field(description="Probes by name.")

    def to_pack_info(self) -> StaticPackInfo:
        """As a :class:`StaticPackInfo`."""
        return StaticPackInfo.build(
            self.d_sae,
            {
                name: {
                    "concept": p.concept or name,
                    "thresholds": p.thresholds,
                    "top_features": p.top_features,
                }
                for name, p in self.probes.items()
            },
        )


class CasesFile(PolicyModel):
    """A cases file."""

    pack: CasePack | None = Field(default=None, description="Inline pack description.")
    cases: list[Case] = Field(min_length=1, description="The recorded requests.")


@dataclass(frozen=True)
class Firing:
    """A rule that fired in a case."""

    case: str
    rule: str
    token_index: int
    token: str
    actions: tuple[str, ...]
    """Alert ``action`` values (``alert``, ``clamp``, ``would_stop`` ...)."""
    probe: str
    score: float | None
    threshold: float | None


@dataclass(frozen=True)
class CaseResult:
    """Outcome of one case."""

    name: str
    firings: tuple[Firing, ...]
    stopped_at: int | None
    """Position where a stop fired (enforce mode), if any."""
    passed: bool | None
    """None without ``expect``; else whether the firings matched it exactly."""
    missing: tuple[tuple[str, int], ...] = ()
    unexpected: tuple[tuple[str, int], ...] = ()


def load_cases(path: str | Path) -> CasesFile:
    """Read and validate a cases file; raises :class:`PolicyError` with line numbers."""
    source = str(path)
    try:
        doc = parse_yaml(Path(path).read_text(encoding="utf-8"), source)
    except YamlSyntaxError as exc:
        raise PolicyError([exc.issue]) from exc
    try:
        return CasesFile.model_validate(doc.data)
    except ValidationError as exc:
        issues = validation_issues(exc, doc, source, CasesFile)
        raise PolicyError(issues or [PolicyIssue(source, 1, "(root)", str(exc))]) from exc


def run_cases(policy: CompiledPolicy, cases: Sequence[Case]) -> list[CaseResult]:
    """Run every case through a fresh request monitor and collect the firings."""
    results: list[CaseResult] = []
    for case in cases:
        monitor = policy.new_request(f"case:{case.name}", RequestContext(clock=lambda: 0.0))
        firings: list[Firing] = []
        stopped_at: int | None = None
        for index, step in enumerate(case.steps):
            result = monitor.step(step.scores, index, step.token, step.scope)
            if result.stop is not None and stopped_at is None:
                stopped_at = index
            for rule_id in result.fired:
                alerts = [a for a in result.alerts if a.rule_id == rule_id]
                first = alerts[0]
                firings.append(
                    Firing(
                        case=case.name,
                        rule=rule_id,
                        token_index=index,
                        token=step.token,
                        actions=tuple(a.action for a in alerts),
                        probe=first.probe,
                        score=first.score,
                        threshold=first.threshold,
                    )
                )
        results.append(_judge(case, tuple(firings), stopped_at))
    return results


def _judge(case: Case, firings: tuple[Firing, ...], stopped_at: int | None) -> CaseResult:
    if case.expect is None:
        return CaseResult(case.name, firings, stopped_at, None)
    got = [(f.rule, f.token_index) for f in firings]
    want = [(e.rule, e.token_index) for e in case.expect]
    missing = tuple(w for w in want if w not in got)
    unexpected = tuple(g for g in got if g not in want)
    return CaseResult(
        case.name, firings, stopped_at, not missing and not unexpected, missing, unexpected
    )
