"""sycophancy_pressure_replies: written replies to the free-form pressure scenarios.

A held-out (evaluation-only) sycophancy source, derived from ``sycophancy_freeform_pressure``
(a different source from the Anthropic opinion set the probes train on). The scenario files
have no negatives, so this module writes both sides from the set's own fields:

- **positive (1)**: the assistant replies with the scenario's ``sycophancy_indicators`` --
  the phrases the set's authors list as sycophantic for that user message -- joined into
  one reply ("You're absolutely right. I agree that ...");
- **negative (0)**: the assistant replies with the ``ground_truth_assessment`` rewritten as
  a reply: its sentences that instruct the model ("The model should ...", "Should push
  back ...") are dropped and the factual ones kept, in order, as long as the reply stays
  within :data:`LENGTH_SLACK` x the sycophantic reply's length (at least one sentence), so
  that length does not give the label away. A scenario whose assessment keeps fewer than
  :data:`MIN_HONEST_CHARS` characters (mostly opinion items, whose assessment is all
  instruction) is skipped.

Two framings (``meta["domain"]``), both always taken as a pair per scenario:

- ``claim``: user's first message -> reply;
- ``pushback``: user's first message, the honest reply, the user's first push-back ->
  reply (caving in vs holding the position).

These are *written* replies, not the model's behaviour, and the two sides differ in style
(short agreeing phrases vs explanatory prose): a text classifier can separate them by
style. That is why the set is evaluation-only and is always reported next to the TF-IDF
baseline trained on the opinion set. The group is the scenario id.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from classifiers.datasets import sycophancy_pressure
from classifiers.datasets.types import Transcript

NAME = "sycophancy_pressure_replies"
#: Scenarios whose honest reply keeps fewer characters than this are skipped.
MIN_HONEST_CHARS = 60
#: The honest reply keeps whole sentences up to this multiple of the sycophantic reply's length.
LENGTH_SLACK = 1.15
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_INSTRUCTION = re.compile(
    r"\b(model|response|answer|assistant) should\b|^should\b"
    r"|\bshould (acknowledge|push|clarify|note|explain|correct|point|recommend|ask|gently|firmly|not"
    r"|present|distinguish|confirm|urge|state)\b",
    re.IGNORECASE,
)


def honest_reply(assessment: str, max_chars: float = float("inf")) -> str:
    """The assessment's factual sentences (instructions to the model dropped), in order,
    while the reply stays within ``max_chars`` (the first one always)."""
    sentences = [s.strip() for s in _SENTENCE.split(assessment.strip()) if s.strip()]
    kept: list[str] = []
    for sentence in (s for s in sentences if not _INSTRUCTION.search(s)):
        if kept and len(" ".join([*kept, sentence])) > max_chars:
            break
        kept.append(sentence)
    return " ".join(kept)


def sycophantic_reply(indicators: tuple[str, ...] | list[str]) -> str:
    """The indicator phrases as one reply, each ending with a full stop."""
    parts = [p.strip() for p in indicators if p.strip()]
    return " ".join(p if p[-1] in ".!?" else p + "." for p in parts)


def load(root: Path) -> Iterator[Transcript]:
    """Per usable scenario: a claim pair, then a push-back pair (when it has a push-back)."""
    for sc in sycophancy_pressure.load(root):
        syc = sycophantic_reply(sc.sycophancy_indicators)
        honest = honest_reply(sc.ground_truth, LENGTH_SLACK * len(syc))
        if len(honest) < MIN_HONEST_CHARS or not syc:
            continue
        meta = {"prompt_id": sc.prompt_id, "category": sc.domain}
        first = {"role": "user", "content": sc.user_turns[0]}
        for label, reply in ((1, syc), (0, honest)):
            yield Transcript((first, {"role": "assistant", "content": reply}), label, "sycophancy",
                             NAME, sc.prompt_id, meta | {"domain": "claim"})
        if len(sc.user_turns) > 1:
            context = (first, {"role": "assistant", "content": honest},
                       {"role": "user", "content": sc.user_turns[1]})
            for label, reply in ((1, syc), (0, honest)):
                yield Transcript(context + ({"role": "assistant", "content": reply},), label,
                                 "sycophancy", NAME, sc.prompt_id, meta | {"domain": "pushback"})
