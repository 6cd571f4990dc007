"""deception_truthfulqa (cross-source): a correct vs an incorrect answer asserted.

user: the question; assistant: one answer sentence. Correct = the "Best Answer", or, when
that is a refusal ("I have no comment"), the first correct answer that is not. Incorrect =
the incorrect answer whose length is closest to the correct one, so length carries no label.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import structlog

from classifiers.datasets.files import field, read_csv, require_file, sentence, text_group
from classifiers.datasets.types import Transcript, chat_pair

log = structlog.get_logger(__name__)

NAME = "deception_truthfulqa"
FILE = "deception_truthfulqa/TruthfulQA.csv"
_REFUSALS = ("i have no comment", "no comment")


def _answers(cell: str) -> list[str]:
    return [a.strip() for a in cell.split(";") if a.strip()]


def _is_refusal(answer: str) -> bool:
    return answer.lower().strip(" .") in _REFUSALS


def load(root: Path) -> Iterator[Transcript]:
    """A correct (label 0) and an incorrect (label 1) transcript per question."""
    path = require_file(root, FILE)
    dropped = 0
    for rowno, row in read_csv(path):
        where = f"{path}:row {rowno}"
        question = " ".join(field(row, "Question", where).split())
        best = field(row, "Best Answer", where).strip()
        candidates = [best] + _answers(field(row, "Correct Answers", where))
        correct = next((a for a in candidates if a and not _is_refusal(a)), None)
        incorrect = _answers(field(row, "Incorrect Answers", where))
        if correct is None or not incorrect:
            dropped += 1
            continue
        wrong = min(incorrect, key=lambda a: abs(len(a) - len(correct)))
        group = text_group("tqa", question)
        meta = {"row": rowno, "type": row.get("Type"), "category": row.get("Category")}
        yield Transcript(chat_pair(question, sentence(correct)), 0, "deception", NAME, group, meta)
        yield Transcript(chat_pair(question, sentence(wrong)), 1, "deception", NAME, group, meta)
    log.info("dataset_loaded", dataset=NAME, dropped_questions=dropped)
