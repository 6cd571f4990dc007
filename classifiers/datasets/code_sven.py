"""code_sven: SVEN vulnerable (label 1) vs fixed (label 0) functions, 9 CWEs, Python and C/C++.

Framing in :mod:`classifiers.datasets.code_pairs`. SVEN has no functional description, so
the user turn names the language and the function only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from classifiers.datasets.code_pairs import load_code_pairs
from classifiers.datasets.types import Transcript

NAME = "code_sven"
FILE = "code_sven/sven_flat.jsonl"
RAW_GLOB = "code_sven/raw/*/cwe-*.jsonl"


def load(root: Path) -> Iterator[Transcript]:
    """Two transcripts per non-identical SVEN pair (4 identical pairs are dropped)."""
    return load_code_pairs(root, NAME, FILE, RAW_GLOB)
