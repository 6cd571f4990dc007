"""Write a pack's probes (the format and its reader belong to the runtime:
:mod:`monitor.pack.probes_file`, re-exported here), and the training-side helpers that
rank a probe's features.

Both files are written to temporary names and renamed into place, weights first.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import save_file

from classifiers.datasets.concepts import CONCEPTS
from monitor.pack.probes_file import (
    JSON_NAME,
    RESERVED,
    SCHEMA_VERSION,
    TENSORS_NAME,
    ProbeFileError,
    ProbeRecord,
    ProbeSet,
    load_probes,
)

__all__ = [
    "JSON_NAME",
    "SCHEMA_VERSION",
    "TENSORS_NAME",
    "ProbeFileError",
    "ProbeRecord",
    "ProbeSet",
    "load_probes",
    "save_probes",
    "top_features",
    "typical_activation",
]


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
    clash = RESERVED & set(record.extra)
    if clash:
        raise ProbeFileError(f"probe {record.name!r}: extra fields reuse reserved keys {clash}")
    body = {
        "concept": record.concept,
        "pooling": record.pooling,
        "thresholds": {str(k): float(v) for k, v in record.thresholds.items()},
        "top_features": [[int(i), float(c)] for i, c in record.top_features],
        "metrics": _jsonable(record.metrics),
        "training": _jsonable(record.training),
        "feature_basis": record.feature_basis,
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
    resid_dims = {np.asarray(r.resid_weights).ravel().size for r in records if r.resid_weights is not None}
    if len(resid_dims) > 1:
        raise ProbeFileError(f"dense probes have different residual dimensions: {sorted(resid_dims)}")
    for record in records:
        if record.resid_weights is not None and np.any(np.asarray(record.weights) != 0):
            raise ProbeFileError(f"probe {record.name!r} is dense (resid_weights) but has non-zero SAE weights")
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
    tensors = {"W": np.ascontiguousarray(probe_set.W), "b": np.ascontiguousarray(probe_set.b)}
    if probe_set.W_resid is not None:
        tensors["W_resid"] = np.ascontiguousarray(probe_set.W_resid)
    save_file(
        tensors,
        str(tmp_st),
        metadata={"schema_version": str(SCHEMA_VERSION), "format": "saeguard-probes"},
    )
    tmp_json.write_text(text, encoding="utf-8")
    os.replace(tmp_st, st_path)
    os.replace(tmp_json, json_path)
    return json_path, st_path
