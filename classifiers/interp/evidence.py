"""A feature's evidence from ``features.json`` (density, label, one top context), attached
to every search result so a person can judge a feature before putting it in a policy."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Density assumed for a feature missing from features.json (it never fired on the
#: evidence tokens) when a score needs log(1/density).
DENSITY_FLOOR = 1e-6


@dataclass(frozen=True)
class FeatureEvidence:
    id: int
    density: float | None
    """Fraction of evidence tokens it fired on (None: not in features.json / no file)."""
    label: str
    top_context: str
    """Its strongest context with the token in «», '' when unknown."""
    top_activation: float | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "density": self.density, "label": self.label,
                "top_context": self.top_context, "top_activation": self.top_activation}

    def line(self) -> str:
        dens = "density ?" if self.density is None else f"density {self.density:.2g}"
        label = f" [{self.label}]" if self.label else ""
        ctx = f"  e.g. {self.top_context!r}" if self.top_context else ""
        return f"{dens}{label}{ctx}"


def feature_evidence(features: Mapping[str, Any] | None, fid: int) -> FeatureEvidence:
    """Evidence for ``fid`` from a parsed ``features.json`` (``{"features": {id: ...}}``)."""
    entry = ((features or {}).get("features") or {}).get(str(int(fid)))
    if not isinstance(entry, Mapping):
        return FeatureEvidence(int(fid), None, "", "", None)
    contexts = entry.get("top_contexts") or []
    top = contexts[0] if contexts and isinstance(contexts[0], Mapping) else {}
    return FeatureEvidence(
        id=int(fid), density=float(entry["density"]) if entry.get("density") is not None else None,
        label=str(entry.get("label") or ""), top_context=str(top.get("text", "")),
        top_activation=float(top["activation"]) if top.get("activation") is not None else None,
    )


def density_of(features: Mapping[str, Any] | None, fid: int, has_file: bool) -> float:
    """Density for ranking: features.json's value; a feature absent from an existing file
    never fired (:data:`DENSITY_FLOOR`); without a file every feature counts as 1 (no prior)."""
    if not has_file:
        return 1.0
    ev = feature_evidence(features, fid)
    return max(ev.density, DENSITY_FLOOR) if ev.density is not None else DENSITY_FLOOR


def rarity(density: float) -> float:
    """log(1/density): 0 for a feature that fires everywhere, ~13.8 at 1e-6."""
    return math.log(1.0 / max(density, DENSITY_FLOOR))
