"""Specificity: does an intervention remove the concept without breaking everything else?

On concept-eliciting prompts, greedy continuations are generated without and with the
intervention, and the concept's probe scores each continuation (positions of the
generated tokens only). Two readings:

- ``score`` (behavioural, the headline): the continuation is re-read *without* the
  intervention, so only a change in what the model wrote counts;
- ``score_in_place``: the probe read at the intervened residual (what the monitor sees
  while the clamp is active; trivially low when the clamped features carry the probe).

Collateral damage: perplexity on neutral text with and without the intervention.
``score_drop = 1 - mean(score_with) / mean(score_base)`` and
``neutral_ppl_increase = ppl_with / ppl_base - 1`` (fractions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from classifiers.interp.studies.common import (
    Completion,
    ProbeHead,
    Setup,
    generate,
    perplexity,
    probe_score,
)
from monitor.guard.interventions import FeatureIntervention


@dataclass(frozen=True)
class SpecificityRow:
    prompt: str
    base_text: str
    text: str
    base_score: float
    score: float
    score_in_place: float

    def to_json(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "base_text": self.base_text, "text": self.text,
                "base_score": round(self.base_score, 4), "score": round(self.score, 4),
                "score_in_place": round(self.score_in_place, 4)}


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / max(len(xs), 1)


@dataclass(frozen=True)
class SpecificityResult:
    probe: str
    intervention: str
    rows: tuple[SpecificityRow, ...]
    neutral_ppl_base: float
    neutral_ppl: float

    @property
    def score_drop(self) -> float:
        base = _mean([r.base_score for r in self.rows])
        return 0.0 if base <= 0 else 1.0 - _mean([r.score for r in self.rows]) / base

    @property
    def score_drop_in_place(self) -> float:
        base = _mean([r.base_score for r in self.rows])
        return 0.0 if base <= 0 else 1.0 - _mean([r.score_in_place for r in self.rows]) / base

    @property
    def neutral_ppl_increase(self) -> float:
        return self.neutral_ppl / self.neutral_ppl_base - 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "probe": self.probe, "intervention": self.intervention,
            "score_drop": round(self.score_drop, 4), "score_drop_in_place": round(self.score_drop_in_place, 4),
            "neutral_ppl_increase": round(self.neutral_ppl_increase, 4),
            "mean_base_score": round(_mean([r.base_score for r in self.rows]), 4),
            "mean_score": round(_mean([r.score for r in self.rows]), 4),
            "neutral_ppl_base": round(self.neutral_ppl_base, 4), "neutral_ppl": round(self.neutral_ppl, 4),
            "rows": [r.to_json() for r in self.rows],
        }


def _scored(setup: Setup, head: ProbeHead, c: Completion, spec: FeatureIntervention | None) -> float:
    ids = list(c.prompt_ids) + list(c.completion_ids)
    start = len(c.prompt_ids)
    if start >= len(ids):
        return 0.0
    return probe_score(setup, head, ids, start, spec)


def specificity(setup: Setup, head: ProbeHead, spec: FeatureIntervention,
                concept_prompts: Sequence[tuple[str, Sequence[int]]], neutral: Sequence[Sequence[int]],
                max_tokens: int = 24) -> SpecificityResult:
    rows = []
    for label, ids in concept_prompts:
        base = generate(setup, ids, None, max_tokens)
        with_ = generate(setup, ids, spec, max_tokens)
        rows.append(SpecificityRow(label, base.text, with_.text, _scored(setup, head, base, None),
                                   _scored(setup, head, with_, None), _scored(setup, head, with_, spec)))
    return SpecificityResult(head.name, spec.describe(), tuple(rows),
                             perplexity(setup, neutral, None), perplexity(setup, neutral, spec))
