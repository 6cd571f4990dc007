"""bias_winobias (cross-source): pro- vs anti-stereotyped coreference sentences.

The pro_ and anti_ files are paired line by line (same number, same sentence except the
pronoun). The bracket markup and the leading line number are stripped, and a doubled
article from the source ("the [the chief]") is collapsed. user: a fixed neutral request;
assistant: the sentence. Label 1 = pro-stereotyped. Group = file type, split and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from classifiers.datasets.files import require_file
from classifiers.datasets.types import DatasetError, Transcript, chat_pair

NAME = "bias_winobias"
USER_PROMPT = "Write one sentence about two people at work."
PARTS: tuple[str, ...] = ("type1.dev", "type1.test", "type2.dev", "type2.test")
_LINE = re.compile(r"^(\d+)\s+(.*\S)\s*$")
_DOUBLED = re.compile(r"\b(the|a|an)\s+\1\b", re.IGNORECASE)


def clean_sentence(marked: str) -> str:
    """Remove ``[...]`` markup and doubled articles; collapse whitespace."""
    text = marked.replace("[", "").replace("]", "")
    text = _DOUBLED.sub(r"\1", text)
    return " ".join(text.split())


def _lines(path: Path) -> list[tuple[str, str]]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            match = _LINE.match(line)
            if match is None:
                raise DatasetError(f"{path}:{lineno}: expected '<number> <sentence>'")
            out.append((match.group(1), match.group(2)))
    return out


def load(root: Path) -> Iterator[Transcript]:
    """A pro-stereotyped (1) and an anti-stereotyped (0) transcript per line pair."""
    for part in PARTS:
        pro_path = require_file(root, f"bias_winobias/pro_stereotyped_{part}.txt")
        anti_path = require_file(root, f"bias_winobias/anti_stereotyped_{part}.txt")
        pro, anti = _lines(pro_path), _lines(anti_path)
        if len(pro) != len(anti):
            raise DatasetError(f"{pro_path} and {anti_path} have different line counts")
        for (num_p, text_p), (num_a, text_a) in zip(pro, anti, strict=True):
            if num_p != num_a:
                raise DatasetError(f"{pro_path}: line numbers diverge ({num_p} vs {num_a})")
            group = f"wino:{part}:{num_p}"
            meta = {"part": part, "line": int(num_p)}
            for label, text in ((1, text_p), (0, text_a)):
                yield Transcript(
                    chat_pair(USER_PROMPT, clean_sentence(text)), label, "bias", NAME, group, meta
                )
