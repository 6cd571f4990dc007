"""A guard pack belongs to one model: its SAE and probes read that model's residual stream,
so on another model they score confident nonsense. Refuse, in one line, before anything
starts."""

from __future__ import annotations

from pathlib import Path

from monitor.pack.errors import PackError
from monitor.pack.manifest import PackManifest


def _short(sha: str) -> str:
    return sha if sha.startswith("hf:") else sha[:12]


def pinned_sha256(spec: str) -> str | None:
    """The weights hash of a registered offline model, known without loading it (else None)."""
    from monitor.model.registry import MODELS

    entry = MODELS.get(spec)
    return entry.gguf_sha256 if entry is not None else None


def check_model(root: Path, manifest: PackManifest, spec: str, weights_sha256: str) -> None:
    """Raise :class:`PackError` unless the pack at ``root`` was built for these weights.

    The weights hash decides (the same weights under another spec name are the same model);
    a pack that records no model is refused too: nothing says which model it reads.
    """
    fix = f"start with --model MODEL matching the pack, or --pack DIR with a pack built for {spec}"
    recorded = manifest.model
    if recorded is None:
        raise PackError(f"{root} records no model in manifest.json, so nothing says it reads "
                        f"{spec} (weights sha256 {_short(weights_sha256)}); {fix}")
    if recorded.weights_sha256.strip().lower() == weights_sha256.strip().lower():
        return
    raise PackError(
        f"{root} was built for model {recorded.id} (weights sha256 {_short(recorded.weights_sha256)}) "
        f"but the model is {spec} (weights sha256 {_short(weights_sha256)}): start with --model {recorded.id}, "
        f"or --pack DIR with a pack built for {spec}")
