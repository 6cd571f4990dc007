"""Deterministic train/validation split by group hash: a pair never straddles the split."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from classifiers.datasets.types import Transcript


@dataclass(frozen=True)
class Split:
    """Result of :func:`split`."""

    train: tuple[Transcript, ...]
    """Transcripts whose group hashed into the training part."""
    val: tuple[Transcript, ...]
    """Transcripts whose group hashed into the validation part."""


def group_unit(source: str, group: str, seed: int) -> float:
    """A number in [0, 1) fixed by (seed, source, group): the group's place in the split."""
    digest = hashlib.sha256(f"{seed}\x00{source}\x00{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split(transcripts: Iterable[Transcript], val_fraction: float, seed: int) -> Split:
    """Groups whose hash falls below ``val_fraction`` go to validation; order is kept.

    The assignment of a group depends only on (seed, source, group), so it is stable when
    other data is added or removed; the validation share is ``val_fraction`` in expectation,
    not exactly.
    """
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    train: list[Transcript] = []
    val: list[Transcript] = []
    for transcript in transcripts:
        unit = group_unit(transcript.source, transcript.group, seed)
        (val if unit < val_fraction else train).append(transcript)
    return Split(tuple(train), tuple(val))
