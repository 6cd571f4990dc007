"""Save and load a pack's probes: ``probes.safetensors`` + ``probes.json`` (no pickles).

- ``probes.safetensors``: ``W`` float32 [d, n_probes] and ``b`` float32 [n_probes]; column
  ``i`` is the ``i``-th probe in ``probes.json``'s key order. Scores are
  ``sigmoid(x @ W + b)`` over raw features.
- ``probes.json``::

    {"schema_version": 1, "hook_name": "blocks.15.hook_resid_post", "d_features": 2048,
     "probes": {"deception": {"concept": "deception", "pooling": "max",
                              "thresholds": {"0.01": 0.83},
                              "top_features": [[123, 0.91], ...],
                              "metrics": {...}, "training": {...}, ...}}, ...}

Both files are written to temporary names and renamed into place, weights first.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import load_file, save_file

from classifiers.datasets.types import CONCEPTS

SCHEMA_VERSION = 1
JSON_NAME = "probes.json"
TENSORS_NAME = "probes.safetensors"
_RESERVED = {"concept", "pooling", "thresholds", "top_features", "metrics", "training"}


class ProbeFileError(ValueError):
    """probes.json / probes.safetensors are missing, malformed or inconsistent."""


@dataclass(frozen=True, eq=False)
class ProbeRecord:
    """One probe as stored in a pack."""

    name: str
    """Key in probes.json (what policies refer to, e.g. "deception")."""
    concept: str
    """One of the concepts in :data:`classifiers.datasets.types.CONCEPTS`."""
    pooling: str
    """How token scores/features are pooled over the assistant turn (mean, max, last)."""
    weights: np.ndarray
    """Weights over raw features, [d]."""
    bias: float
    """Intercept."""
    thresholds: Mapping[str, float] = field(default_factory=dict)
    """Calibrated threshold per target FPR, keyed by the FPR as a string ("0.01")."""
    top_features: Sequence[tuple[int, float]] = ()
    """(feature id, contribution) sorted by contribution, descending."""
    metrics: Mapping[str, Any] = field(default_factory=dict)
    """Evaluation numbers (in-source validation, cross-source, baselines)."""
    training: Mapping[str, Any] = field(default_factory=dict)
    """Training manifest: datasets, split seed, C, CV AUROC, command, data hash."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Other per-probe fields (e.g. layer, feature basis); must not reuse reserved keys."""


@dataclass(frozen=True, eq=False)
class ProbeSet:
    """Everything in a pack's probes/ directory."""

    hook_name: str
    """Hook point the features are read at."""
    probes: tuple[ProbeRecord, ...]
    """Probes in file order (= column order of W)."""
    schema_version: int = SCHEMA_VERSION
    """probes.json schema version."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Other top-level probes.json fields."""

    @property
    def W(self) -> np.ndarray:  # noqa: N802 - the tensor's name in the file
        """Stacked weights [d, n_probes] float32."""
        return np.stack([p.weights for p in self.probes], axis=1).astype(np.float32)

    @property
    def b(self) -> np.ndarray:
        """Biases [n_probes] float32."""
        return np.asarray([p.bias for p in self.probes], dtype=np.float32)


def _jsonable(value: Any) -> Any:
    """Plain-JSON copy: numpy scalars/arrays converted, NaN/inf become None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, bool)):
        return value if isinstance(value, bool) else int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    return value


def typical_activation(X: Any, y: Sequence[int] | np.ndarray) -> np.ndarray:
    """Mean activation of each feature over the positive examples, [d]."""
    mask = np.asarray(y).ravel() == 1
    if not mask.any():
        raise ValueError("no positive examples")
    rows = X[np.flatnonzero(mask)]
    mean = rows.mean(axis=0)
    return np.asarray(mean).ravel() if sp.issparse(X) else np.asarray(mean, np.float64).ravel()


def top_features(
    weights: np.ndarray, typical: np.ndarray, k: int, positive_only: bool = True
) -> list[tuple[int, float]]:
    """The ``k`` features with the largest contribution = weight x typical activation.

    Sorted by contribution, descending (ties by feature id). With ``positive_only`` (the
    default) only features that push the score up are listed: those are the ones
    ``clamp: top_k`` should suppress.
    """
    w = np.asarray(weights, np.float64).ravel()
    a = np.asarray(typical, np.float64).ravel()
    if w.shape != a.shape:
        raise ValueError(f"weights {w.shape} and typical activations {a.shape} differ")
    contribution = w * a
    order = np.lexsort((np.arange(w.size), -contribution))
    if positive_only:
        order = order[contribution[order] > 0]
    return [(int(i), float(contribution[i])) for i in order[: max(k, 0)]]


def _record_json(record: ProbeRecord) -> dict[str, Any]:
    clash = _RESERVED & set(record.extra)
    if clash:
        raise ProbeFileError(f"probe {record.name!r}: extra fields reuse reserved keys {clash}")
    body = {
        "concept": record.concept,
        "pooling": record.pooling,
        "thresholds": {str(k): float(v) for k, v in record.thresholds.items()},
        "top_features": [[int(i), float(c)] for i, c in record.top_features],
        "metrics": _jsonable(record.metrics),
        "training": _jsonable(record.training),
    }
    body.update(_jsonable(record.extra))
    return body


def save_probes(
    directory: str | Path,
    records: Sequence[ProbeRecord],
    hook_name: str,
    extra: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write probes.safetensors and probes.json into ``directory`` (created if needed)."""
    if not records:
        raise ProbeFileError("no probes to save")
    names = [r.name for r in records]
    if len(set(names)) != len(names):
        raise ProbeFileError(f"duplicate probe names: {names}")
    dims = {np.asarray(r.weights).ravel().size for r in records}
    if len(dims) != 1:
        raise ProbeFileError(f"probes have different feature dimensions: {sorted(dims)}")
    for record in records:
        if record.concept not in CONCEPTS:
            raise ProbeFileError(f"probe {record.name!r}: unknown concept {record.concept!r}")
    top = {"schema_version": SCHEMA_VERSION, "hook_name": hook_name, "d_features": dims.pop()}
    for key, value in (extra or {}).items():
        if key in top or key == "probes":
            raise ProbeFileError(f"extra top-level key {key!r} is reserved")
        top[key] = _jsonable(value)
    top["probes"] = {r.name: _record_json(r) for r in records}
    text = json.dumps(top, indent=2, allow_nan=False) + "\n"
    probe_set = ProbeSet(hook_name, tuple(records))
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    st_path, json_path = out / TENSORS_NAME, out / JSON_NAME
    tmp_st = st_path.with_name(TENSORS_NAME + ".tmp")
    tmp_json = json_path.with_name(JSON_NAME + ".tmp")
    save_file(
        {"W": np.ascontiguousarray(probe_set.W), "b": np.ascontiguousarray(probe_set.b)},
        str(tmp_st),
        metadata={"schema_version": str(SCHEMA_VERSION), "format": "saeguard-probes"},
    )
    tmp_json.write_text(text, encoding="utf-8")
    os.replace(tmp_st, st_path)
    os.replace(tmp_json, json_path)
    return json_path, st_path


def load_probes(directory: str | Path) -> ProbeSet:
    """Read and cross-check probes.json and probes.safetensors."""
    root = Path(directory)
    json_path, st_path = root / JSON_NAME, root / TENSORS_NAME
    for path in (json_path, st_path):
        if not path.is_file():
            raise ProbeFileError(f"{path}: missing")
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ProbeFileError(f"{json_path}: invalid JSON ({exc})") from exc
    for key in ("schema_version", "hook_name", "probes"):
        if key not in doc:
            raise ProbeFileError(f"{json_path}: missing top-level key {key!r}")
    if doc["schema_version"] != SCHEMA_VERSION:
        raise ProbeFileError(f"{json_path}: schema_version {doc['schema_version']} unsupported")
    tensors = load_file(str(st_path))
    if set(tensors) != {"W", "b"}:
        raise ProbeFileError(f"{st_path}: expected tensors W and b, found {sorted(tensors)}")
    W, b = tensors["W"], tensors["b"]
    probes = doc["probes"]
    if W.ndim != 2 or b.shape != (W.shape[1],) or W.shape[1] != len(probes):
        raise ProbeFileError(
            f"{st_path}: W {W.shape} / b {b.shape} do not match {len(probes)} probes in json"
        )
    if doc.get("d_features", W.shape[0]) != W.shape[0]:
        raise ProbeFileError(f"{json_path}: d_features {doc['d_features']} but W has {W.shape[0]}")
    records = []
    for i, (name, body) in enumerate(probes.items()):
        missing = {"concept", "pooling", "thresholds", "top_features"} - set(body)
        if missing:
            raise ProbeFileError(f"{json_path}: probes.{name} lacks {sorted(missing)}")
        records.append(
            ProbeRecord(
                name=name,
                concept=body["concept"],
                pooling=body["pooling"],
                weights=W[:, i].copy(),
                bias=float(b[i]),
                thresholds={str(k): float(v) for k, v in body["thresholds"].items()},
                top_features=[(int(f), float(c)) for f, c in body["top_features"]],
                metrics=body.get("metrics", {}),
                training=body.get("training", {}),
                extra={k: v for k, v in body.items() if k not in _RESERVED},
            )
        )
    fixed = ("schema_version", "hook_name", "d_features", "probes")
    top_extra = {k: v for k, v in doc.items() if k not in fixed}
    return ProbeSet(doc["hook_name"], tuple(records), int(doc["schema_version"]), top_extra)
