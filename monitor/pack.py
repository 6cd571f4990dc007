"""Load a guard pack directory: SAE + manifest + feature evidence (+ probes when present).

Layout (see ../shared/DESIGN.md): ``sae/`` (SAELens format), ``manifest.json``,
``features.json``, optionally ``probes/probes.json`` + ``probes/probes.safetensors``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
        return self.features.get("features", {}).get(str(fid))


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


def load_pack(root: str | Path, device: str = "cpu", with_sae: bool = True) -> GuardPack:
    """Load the pack at ``root``; ``with_sae=False`` skips the weights (for ``features show``)."""
    root = Path(root)
    if not root.is_dir():
        raise PackError(f"guard pack directory not found: {root}")
    manifest = _read_json(root / "manifest.json", required=True) or {}
    features = _read_json(root / "features.json", required=False) or {}
    probes = _read_json(root / "probes" / "probes.json", required=False)
    sae = None
    if with_sae:
        try:
            sae = load_sae(str(root / "sae"), device=device)
        except SAESpecError as exc:
            raise PackError(str(exc)) from exc
    return GuardPack(root=root, sae=sae, manifest=manifest, features=features, probes=probes)
