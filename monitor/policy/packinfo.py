"""What the policy compiler needs to know about the loaded guard pack.

Policies are validated against the pack the daemon runs with: probe names must exist,
``calibrated`` thresholds must have been calibrated at the requested false-positive
rate, feature ids must be ``< d_sae`` and a ``top_k`` clamp needs that many ranked
features. :class:`PackInfo` is the interface; :class:`StaticPackInfo` is a plain
implementation (tests build it by hand; :attr:`monitor.pack.GuardPack.info` builds it
from the pack the daemon loaded; :func:`load_pack_info` reads a pack directory for it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from monitor.pack.errors import PackError


@dataclass(frozen=True)
class ProbeInfo:
    """One probe of the pack, as far as policies are concerned."""

    name: str
    """The key users write in ``when.probe`` (e.g. ``deception``)."""
    concept: str
    """The concept the probe scores; copied onto alerts."""
    thresholds: Mapping[float, float] = field(default_factory=lambda: MappingProxyType({}))
    """Calibrated score threshold per target false-positive rate (``{0.01: 0.83}``)."""
    top_features: tuple[int, ...] = ()
    """SAE feature ids ranked by contribution to the probe, largest first."""
    calibration_window: tuple[int, str, str] | None = None
    """``(tokens, reduce, at)`` of the policy window the calibrated thresholds were measured
    with (``probes.json`` -> ``runtime_window``; ``at`` is ``every_token`` unless it says
    ``response_end``); None when the pack does not say. A rule that reads the probe through
    another window gets another false-positive rate."""

    def threshold_at(self, fpr: float) -> float | None:
        """The calibrated threshold for ``fpr`` (matched to 1e-9), or None."""
        for key, value in self.thresholds.items():
            if math.isclose(key, fpr, rel_tol=1e-9, abs_tol=1e-12):
                return value
        return None


class PackInfo(Protocol):
    """Read-only view of a guard pack used to validate and compile policies."""

    @property
    def d_sae(self) -> int:
        """Number of SAE features; valid feature ids are ``0 .. d_sae-1``."""
        ...

    @property
    def probes(self) -> Mapping[str, ProbeInfo]:
        """Probes by name."""
        ...


@dataclass(frozen=True)
class StaticPackInfo:
    """A :class:`PackInfo` held in memory."""

    d_sae: int
    probes: Mapping[str, ProbeInfo]
    hook_name: str = ""
    """The hook point the pack's SAE reads (informational)."""

    @classmethod
    def build(
        cls,
        d_sae: int,
        probes: Mapping[str, Mapping[str, Any]],
        hook_name: str = "",
    ) -> StaticPackInfo:
        """Build from plain data: ``{name: {"concept", "thresholds", "top_features"}}``.

        ``thresholds`` keys may be strings (as in probes.json) or floats;
        ``top_features`` may be ids or ``[id, contribution]`` pairs.
        """
        out: dict[str, ProbeInfo] = {}
        for name, raw in probes.items():
            out[name] = _probe_from_json(name, raw)
        return cls(d_sae=int(d_sae), probes=MappingProxyType(out), hook_name=hook_name)


def _probe_from_json(name: str, raw: Mapping[str, Any]) -> ProbeInfo:
    thresholds = {float(k): float(v) for k, v in dict(raw.get("thresholds") or {}).items()}
    tops: list[int] = []
    for item in raw.get("top_features") or []:
        tops.append(int(item[0]) if isinstance(item, list | tuple) else int(item))
    return ProbeInfo(
        name=name,
        concept=str(raw.get("concept") or name),
        thresholds=MappingProxyType(thresholds),
        top_features=tuple(tops),
        calibration_window=_calibration_window(raw),
    )


def _calibration_window(raw: Mapping[str, Any]) -> tuple[int, str, str] | None:
    """``runtime_window`` (or ``metrics.calibration.window``) as ``(tokens, reduce, at)``."""
    metrics = raw.get("metrics")
    calibration = metrics.get("calibration") if isinstance(metrics, Mapping) else None
    window = raw.get("runtime_window") or (
        calibration.get("window") if isinstance(calibration, Mapping) else None
    )
    if not isinstance(window, Mapping) or "tokens" not in window:
        return None
    return int(window["tokens"]), str(window.get("reduce") or "mean"), str(window.get("at") or "every_token")


PackInfoError = PackError
"""Kept for callers that catch it by this name; the pack loader raises :class:`PackError`."""


def load_pack_info(pack_dir: str | Path) -> StaticPackInfo:
    """The :class:`PackInfo` of the pack at ``pack_dir``, read by the one pack loader
    (:func:`monitor.pack.load_pack`, without the SAE weights; the probes' SAE hash is the
    daemon's check, not the policy validator's)."""
    from monitor.pack.loader import load_pack

    return load_pack(pack_dir, with_sae=False, check_probes=False).info
