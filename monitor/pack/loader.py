"""Load a guard pack directory, once: manifest + SAE config + feature evidence + probes
(+ the SAE weights when asked). The one module that reads a pack; the guard, the policy
validator (:attr:`GuardPack.info`) and the CLI all take the :class:`GuardPack` it returns.

Layout (see ../shared/DESIGN.md): ``manifest.json`` (:class:`~monitor.pack.manifest.PackManifest`),
``sae/`` (SAELens format), ``features.json``, optionally ``probes/probes.json`` +
``probes/probes.safetensors`` (:mod:`monitor.pack.probes_file`).

Two identities are checked:

- probes are weights over *one* SAE's features: ``probes.json`` records the sha256 of the
  ``sae/sae_weights.safetensors`` it was trained on (``sae_sha256``); :func:`load_pack`
  refuses a pack whose SAE weights hash differently;
- the pack reads *one* model's residual stream: ``manifest.json`` records ``model.id`` and
  ``model.weights_sha256``; :meth:`GuardPack.check_model` refuses another model (the daemon
  asks before loading the model when the spec is a registered offline model).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from monitor import hashing
from monitor.pack.errors import PackError
from monitor.pack.manifest import PackManifest
from monitor.pack.model_match import check_model, pinned_sha256
from monitor.pack.probes_file import JSON_NAME, ProbeFileError, ProbeSet, load_probes
from monitor.sae_spec import SAESpecError, load_sae

if TYPE_CHECKING:
    from monitor.policy.packinfo import StaticPackInfo

SAE_WEIGHTS = "sae_weights.safetensors"
"""The file ``probes.json``'s ``sae_sha256`` is the hash of (``sae/`` in a pack)."""


@dataclass(frozen=True)
class GuardPack:
    root: Path
    manifest: PackManifest
    sae_cfg: Mapping[str, Any]
    """``sae/cfg.json`` (``d_sae``, ``metadata.hook_name`` ...), read without the weights;
    empty when a pack has no SAE yet (``features label`` works on such a pack)."""
    features: dict[str, Any]
    """``features.json`` contents (``{"features": {id: {...}}}``); empty if absent."""
    probes: ProbeSet | None
    """The pack's probes, or None for a pack without ``probes/probes.json`` yet."""
    sae: Any = None
    """SAELens ``SAE`` (float32; takes raw residuals, see :mod:`monitor.sae_spec`), or None
    until :meth:`with_sae` (``load_pack(with_sae=False)``)."""

    def weight_format(self, requested: str, device: str) -> str:
        """The weight format to run with this pack (:func:`resolve_weight_format`)."""
        return resolve_weight_format(requested, device, self.manifest.weights)

    @property
    def hook_name(self) -> str:
        meta = self.sae_cfg.get("metadata")
        from_cfg = (meta.get("hook_name") if isinstance(meta, Mapping) else None) or self.sae_cfg.get("hook_name")
        return str(from_cfg or self.manifest.hook_name or (self.probes.hook_name if self.probes else ""))

    @property
    def d_sae(self) -> int:
        """Number of SAE features (``sae/cfg.json``, else the manifest's ``sae.d_sae``)."""
        d_sae = self.sae_cfg.get("d_sae", self.manifest.sae.get("d_sae"))
        if d_sae is None:
            raise PackError(f"guard pack file missing: {self.root / 'sae' / 'cfg.json'} (nothing says d_sae)")
        return int(d_sae)

    def feature(self, fid: int) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.features.get("features", {}).get(str(fid))
        return found

    @property
    def info(self) -> StaticPackInfo:
        """What the policy validator needs: d_sae, probe names, thresholds, ranked features."""
        from monitor.policy.packinfo import StaticPackInfo

        probes = {} if self.probes is None else {
            r.name: {"concept": r.concept, "thresholds": r.thresholds, "top_features": r.top_features,
                     "metrics": r.metrics, **r.extra} for r in self.probes.probes}
        return StaticPackInfo.build(self.d_sae, probes, hook_name=self.hook_name)

    def check_model(self, spec: str, weights_sha256: str) -> None:
        """Raise :class:`PackError` (one line, both models and hashes, the fix) unless the
        pack was built for these weights."""
        check_model(self.root, self.manifest, spec, weights_sha256)

    def check_model_spec(self, spec: str) -> None:
        """:meth:`check_model` before loading: for a registered offline model the pinned
        GGUF hash is known; other specs (``hf:...``) are checked once loaded."""
        pinned = pinned_sha256(spec)
        if pinned is not None:
            self.check_model(spec, pinned)

    def with_sae(self, device: str = "cpu") -> GuardPack:
        """This pack with its SAE weights loaded on ``device``; refused in one line when the
        manifest pins the weights (``sae.weights_sha256``) and the file hashes otherwise."""
        pinned = self.manifest.sae.get("weights_sha256")
        if pinned:
            weights = self.root / "sae" / SAE_WEIGHTS
            if not weights.is_file():
                raise PackError(f"guard pack file missing: {weights}")
            found = file_sha256(weights)
            if found != pinned:
                raise PackError(f"{weights}: sha256 expected {pinned} (manifest.json sae.weights_sha256), "
                                f"found {found}; restore the pack's SAE or rebuild the pack with sae-eval --pack")
        try:
            sae = load_sae(str(self.root / "sae"), device=device)
        except SAESpecError as exc:
            raise PackError(str(exc)) from exc
        return dataclasses.replace(self, sae=sae)


def resolve_weight_format(requested: str, device: str, gated: str | None) -> str:
    """The weight format to run: ``requested``, or for ``auto`` the fastest format that
    passed the pack's quality gates (``gated``, its ``manifest.weights``) on a CPU, fp32
    otherwise (the low-bit kernels are CPU kernels; without a pack, or for a pack that
    records none, nothing was gated)."""
    if requested != "auto":
        return requested
    if not str(device).startswith("cpu"):
        return "fp32"
    return gated or "fp32"


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


def _manifest(path: Path) -> PackManifest:
    raw = _read_json(path, required=True) or {}
    try:
        return PackManifest.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise PackError(f"{path}: {where}: {err['msg']}") from None


@functools.lru_cache(maxsize=8)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:  # noqa: ARG001 - cache key
    return hashing.file_sha256(path)


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file (cached per path, size and mtime: the daemon checks the
    same 10 MB SAE file more than once at startup)."""
    st = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def check_probes_sae(root: str | Path, probes_doc: Mapping[str, Any] | None) -> None:
    """Raise :class:`PackError` unless the pack's probes were trained on the pack's SAE.

    ``probes_doc`` is ``probes.json`` (or :attr:`ProbeSet.doc` plus its ``probes``). A pack
    without probes (or with an empty ``probes`` mapping) passes: there is nothing to score.
    A ``probes.json`` without ``sae_sha256`` is refused too: nothing says which SAE its
    weights belong to.
    """
    root = Path(root)
    if not probes_doc or not probes_doc.get("probes"):
        return
    probes_path = root / "probes" / JSON_NAME
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


def probes_doc(probes: ProbeSet | None) -> dict[str, Any] | None:
    """The ``probes.json``-shaped view :func:`check_probes_sae` reads."""
    if probes is None:
        return None
    return {**probes.doc, "probes": {r.name: r.concept for r in probes.probes}}


def _probes(root: Path) -> ProbeSet | None:
    doc = _read_json(root / "probes" / JSON_NAME, required=False)
    if doc is None:
        return None
    if not doc.get("probes"):  # a probes/ directory whose training has not written any yet
        fixed = ("schema_version", "hook_name", "probes")
        return ProbeSet(str(doc.get("hook_name", "")), (), extra={k: v for k, v in doc.items() if k not in fixed})
    try:
        return load_probes(root / "probes")
    except ProbeFileError as exc:
        raise PackError(str(exc)) from exc


def load_pack(root: str | Path, device: str = "cpu", with_sae: bool = True,
              check_probes: bool = True) -> GuardPack:
    """Read the pack at ``root``; ``with_sae=False`` skips the SAE weights (the daemon's
    cheap checks before the model loads, ``features show``, ``policy check --pack``).

    ``check_probes`` (default) refuses probes trained on another SAE
    (:func:`check_probes_sae`); only commands that never score with the probes turn it off.
    """
    root = Path(root)
    if not root.is_dir():
        raise PackError(f"guard pack directory not found: {root}")
    manifest = _manifest(root / "manifest.json")
    sae_cfg = _read_json(root / "sae" / "cfg.json", required=with_sae) or {}
    features = _read_json(root / "features.json", required=False) or {}
    probes = _probes(root)
    if check_probes:
        check_probes_sae(root, probes_doc(probes))
    pack = GuardPack(root=root, manifest=manifest, sae_cfg=sae_cfg, features=features, probes=probes)
    return pack.with_sae(device) if with_sae else pack
