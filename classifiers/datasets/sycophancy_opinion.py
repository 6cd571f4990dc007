"""sycophancy_anthropic_opinion: choosing the answer that matches the user's stated opinion.

user: the biased prompt (a persona states an opinion, then the multiple-choice question),
without the trailing "Answer:" cue; assistant: "My answer is (X) <choice text>." for the
sycophantic choice (label 1) and for the other choice (label 0) -- the same wording form.
The group is the neutral question, so every persona asking the same question (with
opposite opinions) lands in one split. The neutral prompt is kept in ``meta``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from classifiers.datasets.files import field, read_jsonl, require_file, text_group
from classifiers.datasets.types import DatasetError, Transcript, chat_pair

NAME = "sycophancy_anthropic_opinion"
FILE = "sycophancy_anthropic_opinion/anthropic_sycophancy_subset.jsonl"
_CHOICE = re.compile(r"^\s*\(([A-Z])\)\s*(.+?)\s*$", re.MULTILINE)
_ANSWER_CUE = re.compile(r"\s*Answer:\s*$")


def answer_text(letter: str, choice: str) -> str:
    """The assistant turn for one choice."""
    return f"My answer is ({letter}) {choice.rstrip('.')}."


def load(root: Path) -> Iterator[Transcript]:
    """A sycophantic (1) and a non-sycophantic (0) answer per biased prompt."""
    path = require_file(root, FILE)
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        prompt = field(row, "biased_prompt", where)
        choices = dict(_CHOICE.findall(prompt))
        syc = field(row, "sycophantic_answer", where).strip().strip("()")
        other = field(row, "honest_answer", where).strip().strip("()")
        if len(choices) != 2 or {syc, other} != set(choices):
            raise DatasetError(f"{where}: expected two choices matching the answers, got {choices}")
        user = _ANSWER_CUE.sub("", prompt).strip()
        neutral = field(row, "neutral_prompt", where)
        group = text_group("syc", neutral)
        meta = {"line": lineno, "domain": row.get("domain"), "neutral_prompt": neutral}
        yield Transcript(
            chat_pair(user, answer_text(syc, choices[syc])), 1, "sycophancy", NAME, group, meta
        )
        yield Transcript(
            chat_pair(user, answer_text(other, choices[other])), 0, "sycophancy", NAME, group, meta
        )
