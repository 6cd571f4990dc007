"""deception_lie_detector_pairs: LLM-LieDetector honest vs lie answers to the same question.

user: the question; assistant: one sentence asserting the answer, built by
:mod:`classifiers.datasets.lie_normalise` so the honest and the lie sentence have the same
form. Label 1 = the lie. Pairs whose lie has no reliable answer span are dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import structlog

from classifiers.datasets.files import field, read_jsonl, require_file, text_group
from classifiers.datasets.lie_normalise import clean_question, normalise_pair
from classifiers.datasets.types import Transcript, chat_pair

log = structlog.get_logger(__name__)

NAME = "deception_lie_detector_pairs"
FILE = "deception_lie_detector_pairs/lie_truth_pairs.jsonl"


def load(root: Path) -> Iterator[Transcript]:
    """Yield an honest (label 0) and a lie (label 1) transcript per kept pair."""
    path = require_file(root, FILE)
    dropped = 0
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        source = field(row, "source_dataset", where)
        question = clean_question(field(row, "question", where))
        pair = normalise_pair(
            source, question, field(row, "honest_answer", where), field(row, "lie_answer", where)
        )
        if pair is None:
            dropped += 1
            continue
        group = text_group("lie", question)
        meta = {
            "pair_id": field(row, "pair_id", where),
            "orig_split": row.get("orig_split"),
            "source_dataset": source,
            "family": pair.family,
        }
        yield Transcript(chat_pair(question, pair.honest), 0, "deception", NAME, group, meta)
        yield Transcript(chat_pair(question, pair.lie), 1, "deception", NAME, group, meta)
    log.info("dataset_loaded", dataset=NAME, dropped_pairs=dropped)
