"""Dense verdict probes for a guard pack: fitted on per-token answer residuals at the
pack's SAE hook, scored the way the guard scores, calibrated on what the policy compares.

- **Rows.** Up to ``TOKENS_PER_ITEM`` answer tokens per transcript (evenly spaced, the last
  always included), each labelled with its transcript's label; the guard scores every
  answer token, so the probe is trained on the same kind of row it will see.
- **Fit.** :func:`classifiers.dense.probe.fit_probe` (standardise, L2 logistic regression,
  ``C`` by grouped CV on the training rows: a transcript's tokens never straddle folds),
  then folded into one ``w . x + b`` over the raw residual (what ``probes.safetensors``
  stores as ``W_resid``).
- **Reading.** A response's score is what the policy window computes
  (:mod:`classifiers.probes.readings`): ``max`` over positions of the ``mean`` (or ``max``)
  of the last ``window`` token scores, or, for a verdict read once when the answer has
  ended (``at: response_end``), the last token's score or the mean over the answer. The
  reading is chosen among :data:`READINGS` on the in-source validation split only (answers
  are read up to 160 tokens offline; the run time reads the whole answer).
- **Thresholds.** At each target FPR on that reading over in-source validation negatives
  plus benign chats (the SAE corpus's first exchanges): the rate an operator sees on
  ordinary traffic.
- **Explanation.** ``W_eff = W_dec @ w``: feature ``f`` moves the logit by ``z_f *
  W_eff[f]``; the ranked ``top_features`` (``W_eff x`` typical activation on positive
  answer tokens) are what ``clamp: top_k`` suppresses and what the alert evidence names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from classifiers.dense.extract import TokenResiduals
from classifiers.dense.probe import DenseProbe, fit_probe
from classifiers.probes.readings import Reading, response_scores, token_probabilities

TOKENS_PER_ITEM = 16
READINGS = (Reading(1, "max"), Reading(4, "mean"), Reading(16, "mean"),
            Reading(1, "max", "response_end"), Reading(4096, "mean", "response_end"))
"""Per-token windows (the verdict can act during the answer), then the two end-of-response
verdicts (alert only): the last answer token, and the mean over the whole answer."""


def token_rows(tok: TokenResiduals, items: Sequence[int], per_item: int = TOKENS_PER_ITEM) -> tuple[np.ndarray, np.ndarray]:
    """(X float32 [rows, d], item of each row) for up to ``per_item`` tokens of each item."""
    picks, owner = [], []
    for i in items:
        lo, hi = int(tok.offsets[i]), int(tok.offsets[i + 1])
        if hi <= lo:
            continue
        idx = np.unique(np.linspace(lo, hi - 1, min(per_item, hi - lo)).round().astype(np.int64))
        picks.append(idx)
        owner.append(np.full(idx.size, i))
    rows = np.concatenate(picks)
    return tok.X[rows].astype(np.float32), np.concatenate(owner)


def fold(probe: DenseProbe) -> tuple[np.ndarray, float]:
    """``((x - mu) / sigma) . w + b`` as ``x . w' + b'`` over the raw residual."""
    w = probe.w / probe.sigma
    b = probe.b - float(np.dot(probe.mu / probe.sigma, probe.w))
    return w.astype(np.float32), float(b)


def token_logits(tok: TokenResiduals, w: np.ndarray, b: float, chunk: int = 65536) -> np.ndarray:
    """Per-token logits of every row of ``tok`` (float32 products, as the guard computes)."""
    out = np.empty(tok.X.shape[0], np.float64)
    w32 = np.asarray(w, np.float32)
    for s in range(0, tok.X.shape[0], chunk):
        out[s : s + chunk] = tok.X[s : s + chunk].astype(np.float32) @ w32 + np.float32(b)
    return out


def reading_scores(logits: np.ndarray, tok: TokenResiduals, items: Sequence[int], reading: Reading) -> np.ndarray:
    """R (what the policy compares with its threshold) for each of ``items``."""
    items = list(items)
    segs = [logits[tok.offsets[i] : tok.offsets[i + 1]] for i in items]
    offsets = np.concatenate([[0], np.cumsum([s.size for s in segs])]).astype(np.int64)
    return response_scores(token_probabilities(np.concatenate(segs)), offsets, reading)


@dataclass(frozen=True)
class DenseFit:
    """A fitted dense probe, folded for the runtime."""

    probe: DenseProbe
    w: np.ndarray
    """[d_model] float32 weights over the raw residual."""
    b: float


def mean_rows(tok: TokenResiduals, items: Sequence[int]) -> np.ndarray:
    """[n_items, d] float32: each item's answer tokens averaged."""
    return np.stack([tok.X[tok.offsets[i] : tok.offsets[i + 1]].astype(np.float32).mean(0) for i in items])


def last_rows(tok: TokenResiduals, items: Sequence[int]) -> np.ndarray:
    """[n_items, d] float32: each item's last answer token."""
    return np.stack([tok.X[tok.offsets[i + 1] - 1].astype(np.float32) for i in items])


ROWS = ("tokens", "mean", "last")
"""What a training row is: one answer token (up to :data:`TOKENS_PER_ITEM` per answer), an
answer's mean residual (the pooled study's rows; a linear probe on the mean is the mean of
its per-token logits, which the policy window approximates), or an answer's last token
(what an end-of-answer verdict on one token reads)."""


def fit_dense(tok: TokenResiduals, labels: np.ndarray, groups: Sequence[str], train: Sequence[int],
              layer: int, rows: str = "tokens") -> DenseFit:
    """Fit on the training items' rows (:data:`ROWS`)."""
    if rows in ("mean", "last"):
        X = mean_rows(tok, train) if rows == "mean" else last_rows(tok, train)
        owner = np.asarray(train)
    else:
        X, owner = token_rows(tok, train)
    y = np.asarray(labels)[owner]
    g = [groups[i] for i in owner]
    probe = fit_probe(X, y, g, layer, rows)
    w, b = fold(probe)
    return DenseFit(probe, w, b)


def effective_feature_weights(W_dec: np.ndarray, w: np.ndarray) -> np.ndarray:
    """[d_sae]: how much one unit of each SAE feature moves the dense logit (``W_dec @ w``)."""
    out: np.ndarray = np.asarray(W_dec, np.float64) @ np.asarray(w, np.float64)
    return out
