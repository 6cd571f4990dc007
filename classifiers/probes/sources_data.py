"""Load a concept's sources as cached items: transcripts, labels, groups, split, keys.

Transcripts are the ones the extraction plan selected (same caps and seed), restricted to
the source's domain and to items present in the residual cache. Contrastive pairs whose
two sides are identical within the cached (possibly truncated) content tokens carry no
signal and are dropped (long code files cut at the content cap).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog

from classifiers.datasets import Transcript
from classifiers.datasets.split import group_unit
from classifiers.features.bank import ResidualBank
from classifiers.features.plan import DEFAULT_CAPS, load_selected, message_key
from classifiers.probes.framing import Source

log = structlog.get_logger(__name__)

VAL_FRACTION = 0.2
SPLIT_SEED = 0


@dataclass(frozen=True, eq=False)
class SourceData:
    """One source's cached transcripts."""

    source: Source
    """Which slice."""
    transcripts: tuple[Transcript, ...]
    """Transcripts, in file order."""
    keys: tuple[str, ...]
    """Cache keys (message hashes)."""
    y: np.ndarray
    """Labels [n]."""
    groups: np.ndarray
    """``source|group`` ids [n] (unique across sources)."""
    val: np.ndarray
    """True for the validation split [n] (group split, seed 0, 20%)."""

    @property
    def name(self) -> str:
        """Source name."""
        return self.source.name

    def texts(self) -> list[str]:
        """Assistant texts (for the TF-IDF baseline)."""
        return [t.assistant_text for t in self.transcripts]


def identical_pairs(transcripts: Sequence[Transcript], token_bytes: Sequence[bytes]) -> set[int]:
    """Indices of contrastive groups (both labels) whose members are the same token
    sequence (``token_bytes[i]``: transcript i's read tokens, e.g. cut at a window): they
    carry no signal."""
    by_group: dict[str, list[int]] = {}
    for i, t in enumerate(transcripts):
        by_group.setdefault(t.group, []).append(i)
    drop: set[int] = set()
    for members in by_group.values():
        if len(members) < 2 or {transcripts[i].label for i in members} != {0, 1}:
            continue
        if len({token_bytes[i] for i in members}) == 1:
            drop.update(members)
    return drop


def load_source(
    source: Source,
    root: Path,
    bank: ResidualBank,
    caps: Mapping[str, int | None] = DEFAULT_CAPS,
    seed: int = 0,
) -> SourceData:
    """Selected, cached transcripts of ``source`` (see module doc)."""
    selected = [t for t in load_selected(source.dataset, root, caps.get(source.dataset), seed)
                if source.keep(t)]
    keys = [message_key(t.messages) for t in selected]
    cached = [(t, k) for t, k in zip(selected, keys, strict=True) if k in bank]
    if len(cached) < len(selected):
        log.warning("items_not_cached", source=source.name, missing=len(selected) - len(cached),
                    of=len(selected))
    drop: set[int] = set()
    ids_of = bank.ids([k for _, k in cached]) if cached else None
    if ids_of is not None:
        drop = identical_pairs([t for t, _ in cached],
                               [ids_of.X[ids_of.offsets[i] : ids_of.offsets[i + 1]].tobytes()
                                for i in range(len(cached))])
    if drop:
        log.info("identical_pairs_dropped", source=source.name, transcripts=len(drop))
    kept = [c for i, c in enumerate(cached) if i not in drop]
    ts = tuple(t for t, _ in kept)
    return SourceData(
        source=source,
        transcripts=ts,
        keys=tuple(k for _, k in kept),
        y=np.asarray([t.label for t in ts], dtype=np.int64),
        groups=np.asarray([f"{source.name}|{t.group}" for t in ts]),
        val=np.asarray([group_unit(t.source, t.group, SPLIT_SEED) < VAL_FRACTION for t in ts]),
    )


def load_sources(sources: Sequence[Source], root: Path, bank: ResidualBank) -> dict[str, SourceData]:
    """:func:`load_source` for each, keyed by source name."""
    return {s.name: load_source(s, root, bank) for s in sources}
