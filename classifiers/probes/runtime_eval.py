"""Score chats the way the run-time guard does: model forward, SAE encode, per-token probes,
policy window, max over the response. Used by ``eval-probes --data`` on users' files.

Per chat: render with the chat template, one fp32 forward to the pack's hook, the assistant
content tokens (special tokens skipped, as the guard skips them), ``z = sae.encode(x)``,
``s_t = sigmoid(z_t @ W + b)``, then each probe's ``runtime_window`` (probes.json) pooled and
maximised over the response (:mod:`.readings`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import structlog

from classifiers.probes.readings import Reading, response_scores

log = structlog.get_logger(__name__)


def probe_reading(extra: dict[str, Any]) -> Reading:
    """The window a probe was calibrated for (default: per-token max)."""
    w = extra.get("runtime_window") or {"tokens": 1, "reduce": "max"}
    return Reading(int(w["tokens"]), str(w["reduce"]))


def score_chats(lm: Any, sae: Any, layer: int, W: np.ndarray, b: np.ndarray,
                readings: Sequence[Reading], chats: Sequence[Sequence[dict[str, str]]],
                log_every: int = 50) -> np.ndarray:
    """[n_chats, n_probes] run-time response scores."""
    import torch

    from classifiers.features.extract import residuals_plain
    from classifiers.features.render import render
    from monitor.engine.fastpath import FastForward

    ff = FastForward(lm.model)
    special = {int(i) for i in (getattr(lm.tokenizer, "all_special_ids", None) or [])}
    Wt = torch.as_tensor(np.asarray(W, np.float32))
    bt = torch.as_tensor(np.asarray(b, np.float32))
    out = np.zeros((len(chats), W.shape[1]), dtype=np.float64)
    for i, chat in enumerate(chats):
        rendered = render(lm.tokenizer, chat)
        res = residuals_plain(lm.model, ff, rendered, [layer], None, keep_fp32=True)
        keep = np.asarray([int(t) not in special for t in res.ids], dtype=bool)
        x = torch.as_tensor(res.layers[layer][keep])
        with torch.inference_mode():
            probs = torch.sigmoid(sae.encode(x) @ Wt + bt).numpy()
        offsets = np.asarray([0, probs.shape[0]])
        for j, reading in enumerate(readings):
            out[i, j] = response_scores(probs[:, j], offsets, reading)[0]
        if log_every and (i + 1) % log_every == 0:
            log.info("scored", done=i + 1, of=len(chats))
    return out
