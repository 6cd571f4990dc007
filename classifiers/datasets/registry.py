"""Explicit registry of dataset loaders, keyed by the name users pass on the command line."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from classifiers.datasets.concepts import CONCEPTS, concept_names
from classifiers.datasets.files import default_datasets_root
from classifiers.datasets.types import PressureScenario, Transcript

Role = Literal["train", "cross_source", "scenarios"]


class TranscriptLoader(Protocol):
    """Reads one dataset folder under ``root`` and yields its records, in file order."""

    def __call__(self, root: Path) -> Iterator[Transcript] | Iterator[PressureScenario]: ...


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset."""

    name: str
    """Registry key (also written into probes.json manifests)."""
    loader: TranscriptLoader
    """Function ``loader(root) -> iterator`` over the dataset's records."""
    concept: str
    """Concept the dataset labels."""
    role: Role
    """``train`` (in-source training), ``cross_source`` (held-out source) or ``scenarios``."""
    labelled: bool = True
    """False for scenario sets that yield :class:`PressureScenario`, not transcripts."""
    description: str = ""
    """One line on the framing (see classifiers/datasets/README.md for the detail)."""


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(
    name: str,
    loader: TranscriptLoader,
    *,
    concept: str,
    role: Role,
    labelled: bool = True,
    description: str = "",
) -> DatasetSpec:
    """Add a dataset under ``name``; a name can be registered only once."""
    if name in _REGISTRY:
        raise ValueError(f"dataset {name!r} is already registered")
    if concept not in CONCEPTS:
        raise ValueError(f"unknown concept {concept!r}; expected one of {concept_names()} "
                         "(register it first: classifiers.datasets.concepts.register_concept)")
    if role not in ("train", "cross_source", "scenarios"):
        raise ValueError(f"unknown role {role!r}")
    spec = DatasetSpec(name, loader, concept, role, labelled, description)
    _REGISTRY[name] = spec
    return spec


def get_dataset(name: str) -> DatasetSpec:
    """The spec registered under ``name`` (KeyError lists the known names)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def dataset_names(
    *, concept: str | None = None, role: Role | None = None, labelled: bool | None = None
) -> tuple[str, ...]:
    """Registered names in registration order, optionally filtered."""
    return tuple(
        spec.name
        for spec in _REGISTRY.values()
        if (concept is None or spec.concept == concept)
        and (role is None or spec.role == role)
        and (labelled is None or spec.labelled == labelled)
    )


def _root(root: Path | str | None) -> Path:
    return default_datasets_root() if root is None else Path(root)


def load_transcripts(name: str, root: Path | str | None = None) -> list[Transcript]:
    """All transcripts of a labelled dataset (root defaults to ../shared/datasets)."""
    spec = get_dataset(name)
    if not spec.labelled:
        raise ValueError(f"dataset {name!r} is unlabelled; use load_scenarios()")
    out = list(spec.loader(_root(root)))
    if not all(isinstance(t, Transcript) for t in out):
        raise TypeError(f"loader for {name!r} yielded something other than Transcript")
    return out  # type: ignore[return-value]


def load_scenarios(name: str, root: Path | str | None = None) -> list[PressureScenario]:
    """All records of an unlabelled scenario dataset (root defaults to ../shared/datasets)."""
    spec = get_dataset(name)
    if spec.labelled:
        raise ValueError(f"dataset {name!r} is labelled; use load_transcripts()")
    return list(spec.loader(_root(root)))  # type: ignore[arg-type]
