"""code_safecoder_secnew (cross-source): SafeCoder sec-new vulnerable vs fixed functions.

23 CWEs, 8 languages; framing in :mod:`classifiers.datasets.code_pairs`, with the
functional ``description`` as the user turn.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from classifiers.datasets.code_pairs import load_code_pairs
from classifiers.datasets.types import Transcript

NAME = "code_safecoder_secnew"
FILE = "code_safecoder_secnew/safecoder_secnew_flat.jsonl"
RAW_GLOB = "code_safecoder_secnew/raw/*.jsonl"


def load(root: Path) -> Iterator[Transcript]:
    """Two transcripts per non-identical SafeCoder pair."""
    return load_code_pairs(root, NAME, FILE, RAW_GLOB)
