"""Load a guard pack directory: SAE + manifest + feature evidence (+ probes when present).

Layout (see ../shared/DESIGN.md): ``sae/`` (SAELens format), ``manifest.json``,
``features.json``, optionally ``probes/probes.json`` + ``probes/probes.safetensors``.

Probes are weights over *one* SAE's features: the same feature id means something else in
another SAE, so probes scored on a retrained SAE give confident nonsense. ``probes.json``
records the sha256 of the ``sae/sae_weights.safetensors`` it was trained on
(``sae_sha256``); :func:`load_pack` refuses a pack whose SAE weights hash differently.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor import hashing
from monitor.sae_spec import SAESpecError, load_sae


class PackError(ValueError):
    """A guard pack directory is missing a part or has a malformed file (one line)."""


@dataclass(frozen=True)
class GuardPack:
    root: Path
    sae: Any
    """SAELens ``SAE`` (float32; takes raw residuals, see :mod:`monitor.sae_spec`)."""
    manifest: dict[str, Any]
    features: dict[str, Any]
    """``features.json`` contents (``{"features": {id: {...}}}``); empty if absent."""
    probes: dict[str, Any] | None
    """``probes/probes.json`` contents, or None for a pack without probes yet."""

    @property
    def hook_name(self) -> str:
        return str(self.sae.cfg.metadata.hook_name or self.manifest.get("hook_name", ""))

    def feature(self, fid: int) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.features.get("features", {}).get(str(fid))
        return found


def _read_json(path: Path, required: bool) -> dict[str, Any] | None:
    if not path.is_file():
        if required:
            raise PackError(f"guard pack file missing: {path}")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PackError(f"{path}: invalid JSON at line {exc.lineno} ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise PackError(f"{path}: expected a JSON object")
    return data


SAE_WEIGHTS = "sae_weights.safetensors"
"""The file ``probes.json``'s ``sae_sha256`` is the hash of (``sae/`` in a pack)."""


@functools.lru_cache(maxsize=8)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:  # noqa: ARG001 - cache key
    return hashing.file_sha256(path)


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file (cached per path, size and mtime: the daemon checks the
    same 10 MB SAE file more than once at startup)."""
    st = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def check_probes_sae(root: str | Path, probes_doc: dict[str, Any] | None) -> None:
    """Raise :class:`PackError` unless the pack's probes were trained on the pack's SAE.

    A pack without probes (or with an empty ``probes`` mapping) passes: there is nothing to
    score. A ``probes.json`` without ``sae_sha256`` is refused too: nothing says which SAE
    its weights belong to.
    """
    root = Path(root)
    if not probes_doc or not probes_doc.get("probes"):
        return
    probes_path = root / "probes" / "probes.json"
    weights = root / "sae" / SAE_WEIGHTS
    retrain = f"retrain them with `saeguard train-probes --pack {root}`"
    trained = probes_doc.get("sae_sha256")
    if not isinstance(trained, str) or not trained:
        raise PackError(f"{probes_path} records no sae_sha256, so nothing says its probes were trained on "
                        f"{weights}; refusing to score with them ({retrain})")
    if not weights.is_file():
        raise PackError(f"guard pack file missing: {weights}")
    actual = file_sha256(weights)
    if trained.strip().lower() != actual:
        raise PackError(f"{probes_path} was trained on an SAE with sha256 {trained} but {weights} has sha256 "
                        f"{actual}: these probes belong to another SAE; {retrain}, or restore the SAE "
                        "they were trained on")


def load_pack(root: str | Path, device: str = "cpu", with_sae: bool = True,
              check_probes: bool = True) -> GuardPack:
    """Load the pack at ``root``; ``with_sae=False`` skips the weights (for ``features show``).

    ``check_probes`` (default) refuses probes trained on another SAE
    (:func:`check_probes_sae`); only commands that never score with the probes turn it off.
    """
    root = Path(root)
    if not root.is_dir():
        raise PackError(f"guard pack directory not found: {root}")
    manifest = _read_json(root / "manifest.json", required=True) or {}
    features = _read_json(root / "features.json", required=False) or {}
    probes = _read_json(root / "probes" / "probes.json", required=False)
    if check_probes:
        check_probes_sae(root, probes)
    sae = None
    if with_sae:
        try:
            sae = load_sae(str(root / "sae"), device=device)
        except SAESpecError as exc:
            raise PackError(str(exc)) from exc
    return GuardPack(root=root, sae=sae, manifest=manifest, features=features, probes=probes)
