"""Explicit registry of concepts: each concept is one entry naming the sources its probe
trains on and is evaluated on (the probes.json ``concept`` and the name policies use).

A *source* is a registered dataset (:mod:`classifiers.datasets.registry`), optionally
restricted to one ``meta["domain"]`` (the Anthropic opinion set has two: NLP-survey and
political-typology personas, which serve as two sources for sycophancy since no second
labelled sycophancy dataset exists).

Each concept trains on SEVERAL sources at once and is evaluated leave-one-source-out: the
probe that never saw source S is scored on all of S. That is the generalisation estimate;
in-source numbers come from each source's 20% validation split (group split, seed 0).
A concept may also have *held-out* sources that no probe ever trains on: every attempt's
fit on all the training sources is scored on the whole of each (a cross-source number like
LOSO, but for a source outside the training set). They never choose anything (C, window,
threshold): they are only reported.

Adding a concept: see classifiers/README.md ("Adding a concept").
"""

from __future__ import annotations

import re
from collections.abc import KeysView, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Source:
    """A labelled slice of one dataset."""

    dataset: str
    """Registered dataset name."""
    domain: str | None = None
    """Keep only transcripts with this ``meta["domain"]`` (None: all)."""

    @property
    def name(self) -> str:
        """``dataset`` or ``dataset:domain``."""
        return self.dataset if self.domain is None else f"{self.dataset}:{self.domain}"

    def keep(self, transcript: Any) -> bool:
        """Whether a :class:`~classifiers.datasets.types.Transcript` of ``dataset`` belongs
        to this source."""
        return self.domain is None or transcript.meta.get("domain") == self.domain


@dataclass(frozen=True)
class ConceptFraming:
    """One concept: its name and the sources of its probe."""

    concept: str
    """Probe name / concept (a lowercase identifier: it is a policy's ``when.probe``)."""
    sources: tuple[Source, ...]
    """Sources the shipped probe trains on (train splits) and that LOSO holds out in turn."""
    extra_eval: tuple[Source, ...] = ()
    """Sources only evaluated on their validation split (never trained on by the shipped
    probe), e.g. a known-artefact framing of a training dataset."""
    held_out: tuple[Source, ...] = ()
    """Cross-source sets no probe trains on, scored in full (see the module doc)."""
    description: str = ""
    """One line on what a positive example shows."""

    @property
    def evaluated(self) -> tuple[Source, ...]:
        """Every source loaded for this concept: training, extra_eval, held_out."""
        return self.sources + self.extra_eval + self.held_out

    @property
    def held_out_names(self) -> tuple[str, ...]:
        """Names of the held-out sources."""
        return tuple(s.name for s in self.held_out)


_REGISTRY: dict[str, ConceptFraming] = {}

FRAMINGS: Mapping[str, ConceptFraming] = MappingProxyType(_REGISTRY)
"""Every registered concept's framing, by name (a live read-only view)."""

CONCEPTS: KeysView[str] = FRAMINGS.keys()
"""Every concept a probe can be trained for; the names saved in probes.json (live view, in
registration order)."""

_NAME = re.compile(r"[a-z][a-z0-9_]*")


def register_concept(framing: ConceptFraming) -> ConceptFraming:
    """Add a concept; a name can be registered only once and needs at least one source.

    Its datasets are registered with :func:`~classifiers.datasets.registry.register_dataset`
    after it (that call checks the concept exists)."""
    name = framing.concept
    if name in _REGISTRY:
        raise ValueError(f"concept {name!r} is already registered")
    if not _NAME.fullmatch(name):
        raise ValueError(f"concept name {name!r} must be a lowercase identifier (letters, digits, _)")
    if not framing.sources:
        raise ValueError(f"concept {name!r} needs at least one training source")
    _REGISTRY[name] = framing
    return framing


def concept_names() -> tuple[str, ...]:
    """Registered concept names, in registration order (for messages and defaults)."""
    return tuple(_REGISTRY)
