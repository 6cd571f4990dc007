"""Score chats the way the run-time guard does: model forward, SAE encode, per-token probes,
policy window, max over the response. Used by ``eval-probes --data`` on users' files.

Per chat: render with the chat template, one fp32 forward to the pack's hook, the assistant
content tokens (special tokens skipped, as the guard skips them), ``z = sae.encode(x)``,
``s_t = sigmoid(z_t @ W + x_t @ W_resid + b)`` (``W_resid`` for dense probes), then each
probe's ``runtime_window`` (probes.json) pooled and maximised over the response
(:mod:`.readings`). ``weights`` picks the fast path's weight format (the quality gates of
ops/bench/weights_quality.py score the same chats in each).

Chats longer than the model's context (``n_ctx``) are read as the guard would have seen
them: an answer that runs past the context is cut where the context ends (the daemon stops
generating there), and a chat whose prompt alone fills the context is skipped (the daemon
refuses such a prompt). Both are counted and logged; skipped chats score NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog

from classifiers.probes.readings import Reading, response_scores

log = structlog.get_logger(__name__)


@dataclass
class ChatScores:
    """Run-time response scores of a list of chats."""

    scores: np.ndarray
    """[n_chats, n_probes]; NaN rows for skipped chats."""
    truncated: list[int] = field(default_factory=list)
    """Indices of chats whose answer was cut at the model's context length."""
    skipped: list[int] = field(default_factory=list)
    """Indices of chats whose prompt alone fills the context (not scored)."""


def probe_reading(extra: dict[str, Any]) -> Reading:
    """The window a probe was calibrated for (default: per-token max)."""
    return Reading.from_json(extra.get("runtime_window") or {"tokens": 1, "reduce": "max"})


def score_chats(lm: Any, sae: Any, layer: int, W: np.ndarray, b: np.ndarray,
                readings: Sequence[Reading], chats: Sequence[Sequence[dict[str, str]]],
                log_every: int = 50, W_resid: np.ndarray | None = None, weights: str = "fp32") -> ChatScores:
    """Run-time response scores [n_chats, n_probes] (see the module doc for long chats)."""
    import torch

    from classifiers.features.extract import residuals_plain
    from classifiers.features.render import render
    from monitor.engine.fastpath import FastForward

    ff = FastForward(lm.model, weights)  # type: ignore[arg-type]
    special = {int(i) for i in (getattr(lm.tokenizer, "all_special_ids", None) or [])}
    Wt = torch.as_tensor(np.asarray(W, np.float32))
    bt = torch.as_tensor(np.asarray(b, np.float32))
    Wr = None if W_resid is None else torch.as_tensor(np.asarray(W_resid, np.float32))
    n_ctx = int(lm.model.cfg.n_ctx)
    out = np.full((len(chats), W.shape[1]), np.nan, dtype=np.float64)
    result = ChatScores(out)
    for i, chat in enumerate(chats):
        rendered = render(lm.tokenizer, chat)
        room = n_ctx - rendered.start
        if room < 1:
            result.skipped.append(i)
            continue
        if rendered.n_content > room:
            result.truncated.append(i)
        res = residuals_plain(lm.model, ff, rendered, [layer], room, keep_fp32=True)
        keep = np.asarray([int(t) not in special for t in res.ids], dtype=bool)
        if not keep.any():
            result.skipped.append(i)
            continue
        x = torch.as_tensor(res.layers[layer][keep])
        with torch.inference_mode():
            logits = sae.encode(x) @ Wt + bt
            probs = torch.sigmoid(logits if Wr is None else logits + x @ Wr).numpy()
        offsets = np.asarray([0, probs.shape[0]])
        for j, reading in enumerate(readings):
            out[i, j] = response_scores(probs[:, j], offsets, reading)[0]
        if log_every and (i + 1) % log_every == 0:
            log.info("scored", done=i + 1, of=len(chats))
    if result.truncated:
        log.warning("answers_cut_at_context", chats=len(result.truncated), n_ctx=n_ctx,
                    note="scored on the tokens that fit, as the guard would have")
    if result.skipped:
        log.warning("chats_skipped", chats=len(result.skipped), n_ctx=n_ctx,
                    note="the prompt alone fills the context (the daemon refuses it), or the answer is only special tokens")
    return result
