"""Per-feature evidence: density and top-activating contexts, saved as ``features.json``.

Contexts are rebuilt from the pre-tokenized corpus: the activating token is wrapped in
«» with ~``chars`` characters of text around it (more before than after, since the
residual at a token only sees what precedes it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import torch

from classifiers.sae.corpus import Corpus

log = structlog.get_logger(__name__)

FEATURES_SCHEMA_VERSION = 1

AUTO_LABEL_SOURCE = "auto:top_tokens"
"""``label_source`` of a label made by :func:`auto_label` (any other label is a person's
and is never overwritten)."""
AUTO_LABEL_TOKENS = 3
"""Distinct tokens in an automatic label."""


@dataclass(frozen=True)
class FeatureStats:
    fire_counts: torch.Tensor
    """[d_sae] tokens each feature fired on."""
    n_tokens: int
    top_values: torch.Tensor
    """[top, d_sae] largest activations (descending)."""
    top_rows: torch.Tensor
    """[top, d_sae] row index into the activation set of each top activation."""


@torch.no_grad()
def feature_stats(sae: Any, acts: torch.Tensor, top: int = 5, batch: int = 4096, bf16: bool = True) -> FeatureStats:
    """Fire counts and the ``top`` largest activations (with their rows) of every feature.

    ``bf16`` runs the encoder matmul under bfloat16 autocast (evidence only; the
    metrics in :mod:`classifiers.sae.metrics` are fp32)."""
    d_sae = int(sae.cfg.d_sae)
    fires = torch.zeros(d_sae, dtype=torch.int64)
    best_v = torch.full((d_sae, top), -1.0)
    best_i = torch.zeros((d_sae, top), dtype=torch.int64)
    for i in range(0, acts.shape[0], batch):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            z = sae.encode(acts[i : i + batch].float())
        zt = z.float().T.contiguous()
        fires += (zt != 0).sum(1)
        k = min(top, zt.shape[1])
        v, idx = torch.topk(zt, k, dim=1)
        allv = torch.cat([best_v, v], dim=1)
        alli = torch.cat([best_i, idx + i], dim=1)
        sel = torch.topk(allv, top, dim=1).indices
        best_v = torch.gather(allv, 1, sel)
        best_i = torch.gather(alli, 1, sel)
    return FeatureStats(fire_counts=fires, n_tokens=int(acts.shape[0]), top_values=best_v.T.contiguous(),
                        top_rows=best_i.T.contiguous())


def context_text(tokenizer: Any, corpus: Corpus, doc: int, pos: int, chars: int = 80) -> tuple[str, str]:
    """(text with the token in «», the token's own text) for ``corpus.doc(doc)[pos]``."""
    ids = corpus.doc(doc).tolist()
    before = tokenizer.decode(ids[max(0, pos - 32) : pos])
    token = tokenizer.decode(ids[pos : pos + 1])
    after = tokenizer.decode(ids[pos + 1 : pos + 12])
    n_before = max(10, int(chars * 0.7) - len(token))
    n_after = max(0, chars - n_before - len(token))
    return f"{before[-n_before:]}«{token}»{after[:n_after]}", token


def build_features_json(
    stats: FeatureStats, index: dict[str, torch.Tensor], tokenizer: Any, corpus: Corpus,
    hook_name: str, chars: int = 80, source_note: str = "",
) -> dict[str, Any]:
    """``{"schema_version", "hook_name", "n_tokens", "features": {id: {...}}}`` for live features."""
    feats: dict[str, Any] = {}
    for f in range(stats.fire_counts.numel()):
        count = int(stats.fire_counts[f])
        if count == 0:
            continue
        contexts = []
        for j in range(stats.top_values.shape[0]):
            v = float(stats.top_values[j, f])
            if v <= 0:
                break
            row = int(stats.top_rows[j, f])
            text, token = context_text(tokenizer, corpus, int(index["doc"][row]), int(index["pos"][row]), chars)
            contexts.append({"activation": round(v, 3), "token": token, "text": text})
        feats[str(f)] = {"density": count / stats.n_tokens, "label": "", "top_contexts": contexts}
    data = {"schema_version": FEATURES_SCHEMA_VERSION, "hook_name": hook_name, "n_tokens": stats.n_tokens,
            "source": source_note, "features": feats}
    label_features(data)
    return data


def _show_token(token: str) -> str:
    """A token as a label word: stripped; whitespace-only tokens spelled out (``\\n``, ``␣``)."""
    word = token.strip()
    if word:
        return word[:20]
    return token.replace(" ", "␣").replace("\n", "\\n").replace("\t", "\\t") or "∅"


def auto_label(entry: dict[str, Any], n_tokens: int = AUTO_LABEL_TOKENS) -> str:
    """A short label from a feature's top-activating tokens (no model run): ``tokens: a | b``.

    The ``n_tokens`` most frequent distinct tokens among ``top_contexts`` (ties: the
    higher activation first, as the contexts are stored). Deterministic; empty when the
    feature has no contexts. It says *what the feature fires on*, not what it means:
    a person's label should replace it when someone has looked.
    """
    counts: dict[str, int] = {}
    for ctx in entry.get("top_contexts") or []:
        word = _show_token(str(ctx.get("token", "")))
        counts[word] = counts.get(word, 0) + 1
    if not counts:
        return ""
    order = sorted(counts, key=lambda w: -counts[w])  # stable: first (highest) seen wins ties
    return "tokens: " + " | ".join(order[:n_tokens])


def label_features(data: dict[str, Any]) -> tuple[int, int]:
    """Fill ``label`` of every feature that has none (or an automatic one) with
    :func:`auto_label`, in place. Returns (automatic labels written, person labels kept)."""
    written = kept = 0
    for entry in (data.get("features") or {}).values():
        if entry.get("label") and entry.get("label_source") != AUTO_LABEL_SOURCE:
            kept += 1
            continue
        label = auto_label(entry)
        entry["label"] = label
        if label:
            entry["label_source"] = AUTO_LABEL_SOURCE
            written += 1
        else:
            entry.pop("label_source", None)
    return written, kept


def write_features_json(data: dict[str, Any], path: Path) -> None:
    """Write atomically (a temporary name renamed into place: the daemon may be reading it)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    tmp.replace(path)


def format_feature(fid: int, entry: dict[str, Any] | None, n_tokens: int | None = None) -> Sequence[str]:
    """Human-readable lines for ``saeguard features show``."""
    if entry is None:
        return [f"feature {fid}: dead (never fired on the evidence tokens)"]
    head = f"feature {fid}: density {entry['density']:.3g}"
    if n_tokens:
        head += f" over {n_tokens} tokens"
    if entry.get("label"):
        head += f"  label: {entry['label']}"
    lines = [head]
    for c in entry.get("top_contexts", []):
        lines.append(f"  {c['activation']:8.3f}  {c['text']!r}")
    return lines
