"""The pack's SAE features for the console: labels and top activating examples from
``features.json`` (read once, on first use), decoder-cosine neighbours and logit effects
computed from the loaded SAE and the model's unembedding.

The torch functions take tensors and are run on the scheduler's thread
(:mod:`monitor.server.ui.calljob`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

ACTIVATING_MARKS = ("\u00ab", "\u00bb")
"""``features.json`` marks the activating token of an example as ``«token»``."""


@dataclass(frozen=True)
class FeatureSummary:
    id: int
    label: str
    density: float | None


class FeatureBook:
    """``features.json`` of a pack, loaded lazily (3 MB: not at startup, not per request)."""

    def __init__(self, pack_dir: Path) -> None:
        self.path = Path(pack_dir) / "features.json"
        self._lock = threading.Lock()
        self._features: dict[int, dict[str, Any]] | None = None

    @property
    def features(self) -> dict[int, dict[str, Any]]:
        with self._lock:
            if self._features is None:
                doc: dict[str, Any] = {}
                if self.path.is_file():
                    doc = json.loads(self.path.read_text(encoding="utf-8"))
                raw = doc.get("features") or {}
                self._features = {int(k): v for k, v in raw.items() if isinstance(v, dict)}
            return self._features

    def label(self, fid: int) -> str:
        return str(self.features.get(fid, {}).get("label", ""))

    def search(self, query: str, offset: int, limit: int) -> tuple[int, list[FeatureSummary]]:
        """Features whose id equals ``query`` or whose label contains it (case-insensitive);
        all features for an empty query. (total matches, one page)."""
        q = query.strip().lower()
        found = []
        for fid in sorted(self.features):
            info = self.features[fid]
            label = str(info.get("label", ""))
            if not q or q == str(fid) or q in label.lower():
                found.append(FeatureSummary(fid, label, info.get("density")))
        return len(found), found[offset: offset + limit]

    def examples(self, fid: int) -> list[dict[str, Any]]:
        """Top activating examples, each split at its marked token:
        ``{activation, before, token, after}`` (the browser highlights ``token``)."""
        out = []
        for ctx in self.features.get(fid, {}).get("top_contexts") or []:
            text = str(ctx.get("text", ""))
            start, end = ACTIVATING_MARKS
            i = text.find(start)
            j = text.find(end, i + 1) if i >= 0 else -1
            if i >= 0 and j > i:
                before, token, after = text[:i], text[i + 1: j], text[j + 1:]
            else:
                before, token, after = text, "", ""
            out.append({"activation": ctx.get("activation"), "before": before, "token": token, "after": after})
        return out


@torch.no_grad()
def decoder_neighbours(W_dec: Tensor, fid: int, k: int = 8) -> list[tuple[int, float]]:
    """The ``k`` features whose decoder directions are closest in cosine to ``fid``'s."""
    unit = W_dec.float() / W_dec.float().norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos = unit @ unit[fid]
    cos[fid] = -2.0
    top = torch.topk(cos, min(k, cos.numel() - 1))
    return [(int(i), round(float(v), 4)) for v, i in zip(top.values, top.indices, strict=True)]


@torch.no_grad()
def logit_effects(direction: Tensor, W_U: Tensor, ln_w: Tensor | None, decode: Callable[[int], str],
                  k: int = 10) -> dict[str, list[tuple[str, float]]]:
    """Direct logit effect of a residual direction: ``(direction * ln_final.w) @ W_U``; the
    tokens it raises and lowers most (the final norm's scale applied, its division not)."""
    d = direction.float() * ln_w.float() if ln_w is not None else direction.float()
    logits = d @ W_U.float()
    up = torch.topk(logits, k)
    down = torch.topk(-logits, k)
    return {"up": [(decode(int(i)), round(float(v), 3)) for v, i in zip(up.values, up.indices, strict=True)],
            "down": [(decode(int(i)), round(-float(v), 3)) for v, i in zip(down.values, down.indices, strict=True)]}
