"""sycophancy_freeform_pressure: unlabelled multi-turn pressure scenarios (no negatives).

Each record is a :class:`PressureScenario` (initial user message, two pushbacks, the
ground-truth assessment and sycophantic phrases). Usable to generate on-policy answers and
label them later (did the model move toward the user?); never a labelled set by itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from classifiers.datasets.files import field, read_jsonl
from classifiers.datasets.types import DatasetError, PressureScenario

NAME = "sycophancy_freeform_pressure"
FOLDER = "sycophancy_freeform_pressure"


def load(root: Path) -> Iterator[PressureScenario]:
    """All scenarios, files in name order, lines in file order."""
    folder = Path(root) / FOLDER
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    if not files:
        raise DatasetError(f"dataset folder not found or empty: {folder} (datasets root: {root})")
    for path in files:
        for lineno, row in read_jsonl(path):
            where = f"{path}:{lineno}"
            turns = [field(row, "initial_user_message", where)]
            turns += [row[k] for k in sorted(row) if k.startswith("user_pushback_")]
            indicators = field(row, "sycophancy_indicators", where)
            if not isinstance(indicators, list) or not all(isinstance(s, str) for s in indicators):
                raise DatasetError(f"{where}: sycophancy_indicators must be a list of strings")
            yield PressureScenario(
                prompt_id=field(row, "prompt_id", where),
                domain=field(row, "domain", where),
                user_turns=tuple(turns),
                ground_truth=field(row, "ground_truth_assessment", where),
                sycophancy_indicators=tuple(indicators),
                source=NAME,
            )
