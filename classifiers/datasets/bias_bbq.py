"""BBQ ambiguous-context questions, in two framings (two registered names).

user: the ambiguous context and the question; assistant: "Answer: <answer>."

- ``bias_bbq``: the stereotype-consistent answer (label 1) vs the "can't be determined"
  answer (label 0). Issue 4 measured that a probe on this framing learns "definite vs
  undetermined answer", not bias.
- ``bias_bbq_stereo_vs_anti``: the stereotype-consistent answer (1) vs the
  anti-stereotyped answer (0): both definite and equally unsupported by the context, so
  only the stereotype separates them.

Rows come from the derived file; the raw per-category files supply ``question_index`` (the
template id), which is the group, so every name-filling of a template lands in one split,
and are used to check that the three answers are the raw row's three options.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from classifiers.datasets.files import field, read_jsonl, require_file
from classifiers.datasets.types import DatasetError, Transcript, chat_pair

NAME = "bias_bbq"
NAME_STEREO = "bias_bbq_stereo_vs_anti"
FILE = "bias_bbq/derived_bbq_ambig_biased_vs_unknown.jsonl"


def answer_text(answer: str) -> str:
    """The assistant turn for one answer option."""
    return f"Answer: {answer.strip().rstrip('.')}."


def _raw_rows(root: Path, category: str) -> dict[int, dict[str, Any]]:
    path = require_file(root, f"bias_bbq/{category}.jsonl")
    return {int(row["example_id"]): row for _, row in read_jsonl(path)}


def _rows(root: Path) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(derived row, matching raw row), checked for consistency."""
    path = require_file(root, FILE)
    raw: dict[str, dict[int, dict[str, Any]]] = {}
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        category = field(row, "category", where)
        if category not in raw:
            raw[category] = _raw_rows(root, category)
        orig = raw[category].get(int(field(row, "example_id", where)))
        if orig is None or orig.get("context_condition") != "ambig":
            raise DatasetError(f"{where}: no ambiguous raw BBQ row for this example")
        options = {orig["ans0"], orig["ans1"], orig["ans2"]}
        answers = {row["biased_answer"], row["unbiased_answer"], row["anti_stereotyped_answer"]}
        if options != answers:
            raise DatasetError(f"{where}: answers {answers} differ from the raw options {options}")
        yield row, orig


def _load(root: Path, name: str, negative_key: str) -> Iterator[Transcript]:
    for row, orig in _rows(root):
        user = f"{' '.join(row['context'].split())}\n{row['question'].strip()}"
        group = f"bbq:{row['category']}:{orig['question_index']}"
        meta = {
            "category": row["category"],
            "example_id": row["example_id"],
            "question_polarity": row.get("question_polarity"),
            "stereotyped_groups": row.get("stereotyped_groups"),
        }
        yield Transcript(
            chat_pair(user, answer_text(row["biased_answer"])), 1, "bias", name, group, meta
        )
        yield Transcript(
            chat_pair(user, answer_text(row[negative_key])), 0, "bias", name, group, meta
        )


def load(root: Path) -> Iterator[Transcript]:
    """Stereotyped answer (1) vs "can't be determined" (0)."""
    return _load(root, NAME, "unbiased_answer")


def load_stereo_vs_anti(root: Path) -> Iterator[Transcript]:
    """Stereotyped answer (1) vs anti-stereotyped answer (0)."""
    return _load(root, NAME_STEREO, "anti_stereotyped_answer")
