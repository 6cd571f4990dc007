"""The probes part of a guard pack: ``probes.safetensors`` + ``probes.json`` (no pickles).

- ``probes.safetensors``: ``W`` float32 [d_sae, n_probes] and ``b`` float32 [n_probes];
  column ``i`` is the ``i``-th probe in ``probes.json``'s key order. Optionally
  ``W_resid`` float32 [d_model, n_probes]: weights over the raw residual at the same hook.
  Scores are ``sigmoid(z @ W + x @ W_resid + b)`` (``z`` the SAE codes, ``x`` the residual
  they encode). Each probe reads one of the two (``feature_basis`` in probes.json:
  ``"sae"``, the default, or ``"resid"`` for a dense probe); the other column is zero.
  A dense probe's verdict is still explained in SAE features: ``x = z @ W_dec + b_dec +
  error``, so feature ``f`` moves its logit by ``z_f * (W_dec[f] . w)``.
- ``probes.json``::

    {"schema_version": 1, "hook_name": "blocks.15.hook_resid_post", "d_features": 2048,
     "probes": {"deception": {"concept": "deception", "pooling": "max",
                              "thresholds": {"0.01": 0.83},
                              "top_features": [[123, 0.91], ...],
                              "metrics": {...}, "training": {...}, ...}}, ...}

The runtime owns the format (it is what the daemon scores with); training writes it with
:func:`classifiers.probes.io.save_probes`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file

SCHEMA_VERSION = 1
JSON_NAME = "probes.json"
TENSORS_NAME = "probes.safetensors"
RESERVED = frozenset({"concept", "pooling", "thresholds", "top_features", "metrics", "training",
                      "feature_basis"})
BASES = ("sae", "resid")
"""What a probe reads: the SAE codes, or the raw residual at the pack's hook (dense)."""
"""Per-probe keys with a fixed meaning; anything else is kept in :attr:`ProbeRecord.extra`."""


class ProbeFileError(ValueError):
    """probes.json / probes.safetensors are missing, malformed or inconsistent."""


@dataclass(frozen=True, eq=False)
class ProbeRecord:
    """One probe as stored in a pack."""

    name: str
    """Key in probes.json (what policies refer to, e.g. "deception")."""
    concept: str
    """The concept it scores (a registered concept of :mod:`classifiers.datasets`)."""
    pooling: str
    """How token scores/features are pooled over the assistant turn (mean, max, last)."""
    weights: np.ndarray
    """Weights over the SAE codes, [d_sae] (zeros for a dense probe)."""
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
    """Other per-probe fields (e.g. layer, training window); must not reuse reserved keys."""
    resid_weights: np.ndarray | None = None
    """A dense probe's weights over the raw residual, [d_model]; None for an SAE probe."""

    @property
    def feature_basis(self) -> str:
        """``"resid"`` for a dense probe, ``"sae"`` otherwise."""
        return "sae" if self.resid_weights is None else "resid"


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
    def W_resid(self) -> np.ndarray | None:  # noqa: N802 - the tensor's name in the file
        """Stacked residual weights [d_model, n_probes] (zero columns for SAE probes), or
        None when no probe is dense."""
        dense = [p.resid_weights for p in self.probes if p.resid_weights is not None]
        if not dense:
            return None
        d_model = np.asarray(dense[0]).size
        cols = [np.zeros(d_model, np.float32) if p.resid_weights is None else np.asarray(p.resid_weights).ravel()
                for p in self.probes]
        return np.stack(cols, axis=1).astype(np.float32)

    @property
    def b(self) -> np.ndarray:
        """Biases [n_probes] float32."""
        return np.asarray([p.bias for p in self.probes], dtype=np.float32)

    @property
    def doc(self) -> dict[str, Any]:
        """The top-level ``probes.json`` fields other than ``probes`` (``sae_sha256`` ...)."""
        return {"schema_version": self.schema_version, "hook_name": self.hook_name, **self.extra}


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
    if set(tensors) not in ({"W", "b"}, {"W", "b", "W_resid"}):
        raise ProbeFileError(f"{st_path}: expected tensors W, b (and W_resid), found {sorted(tensors)}")
    W, b, W_resid = tensors["W"], tensors["b"], tensors.get("W_resid")
    probes = doc["probes"]
    if W.ndim != 2 or b.shape != (W.shape[1],) or W.shape[1] != len(probes):
        raise ProbeFileError(
            f"{st_path}: W {W.shape} / b {b.shape} do not match {len(probes)} probes in json"
        )
    if doc.get("d_features", W.shape[0]) != W.shape[0]:
        raise ProbeFileError(f"{json_path}: d_features {doc['d_features']} but W has {W.shape[0]}")
    if W_resid is not None and (W_resid.ndim != 2 or W_resid.shape[1] != W.shape[1]):
        raise ProbeFileError(f"{st_path}: W_resid {W_resid.shape} does not match {len(probes)} probes")
    records = []
    for i, (name, body) in enumerate(probes.items()):
        missing = {"concept", "pooling", "thresholds", "top_features"} - set(body)
        if missing:
            raise ProbeFileError(f"{json_path}: probes.{name} lacks {sorted(missing)}")
        basis = body.get("feature_basis", "sae")
        if basis not in BASES:
            raise ProbeFileError(f"{json_path}: probes.{name}.feature_basis {basis!r} is not one of {list(BASES)}")
        if basis == "resid" and W_resid is None:
            raise ProbeFileError(f"{json_path}: probes.{name} is a dense probe (feature_basis resid) "
                                 f"but {st_path} has no W_resid")
        unread = W[:, i] if basis == "resid" else (W_resid[:, i] if W_resid is not None else None)
        if unread is not None and np.any(unread != 0):
            other = "W" if basis == "resid" else "W_resid"
            raise ProbeFileError(f"{st_path}: probe {name!r} reads {basis} but its {other} column is not zero")
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
                extra={k: v for k, v in body.items() if k not in RESERVED},
                resid_weights=W_resid[:, i].copy() if basis == "resid" and W_resid is not None else None,
            )
        )
    fixed = ("schema_version", "hook_name", "d_features", "probes")
    top_extra = {k: v for k, v in doc.items() if k not in fixed}
    return ProbeSet(doc["hook_name"], tuple(records), int(doc["schema_version"]), top_extra)
