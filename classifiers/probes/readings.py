"""How the run time turns per-token probe scores into a decision, reproduced offline.

At run time the guard computes ``s_t = sigmoid(x_t @ w + b)`` at every monitored response
token, and a policy condition pools the last ``window`` in-scope scores (fewer at the start
of the response: a partial window) with ``mean`` or ``max`` and fires at the first position
where the pooled value reaches the threshold (``min_consecutive: 1``). Whether a response
ever fires is therefore decided by

    R(response) = max over positions t of pool(s[max(0, t - window + 1) : t + 1])

and thresholds calibrated on R (of benign/negative responses) mean what the policy does.
:func:`response_scores` computes R for many responses at once; ``window=1`` is the
per-token maximum, a window at least as long as the response is the maximum running mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from classifiers.probes.train import sigmoid


@dataclass(frozen=True)
class Reading:
    """A policy window: what a ``when: {window: {tokens, reduce}}`` computes."""

    window: int
    """Tokens pooled (the policy's ``window.tokens``)."""
    reduce: str = "mean"
    """``mean`` or ``max`` (the policy's ``window.reduce``)."""

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("window must be >= 1")
        if self.reduce not in ("mean", "max"):
            raise ValueError("reduce must be mean or max")

    @property
    def name(self) -> str:
        """``mean16``, ``max1`` ..."""
        return f"{self.reduce}{self.window}"

    def to_json(self) -> dict[str, object]:
        """The policy ``window`` mapping."""
        return {"tokens": self.window, "reduce": self.reduce}


def _one(scores: np.ndarray, reading: Reading) -> float:
    n = scores.size
    if reading.reduce == "max" or reading.window == 1:
        return float(scores.max())
    csum = np.concatenate([[0.0], np.cumsum(scores, dtype=np.float64)])
    t = np.arange(1, n + 1)
    lo = np.maximum(0, t - reading.window)
    return float(np.max((csum[t] - csum[lo]) / (t - lo)))


def response_scores(token_scores: np.ndarray, offsets: np.ndarray, reading: Reading) -> np.ndarray:
    """R per response from concatenated per-token probabilities and item offsets."""
    s = np.asarray(token_scores, dtype=np.float64).ravel()
    out = np.empty(offsets.size - 1, dtype=np.float64)
    for i in range(out.size):
        seg = s[offsets[i] : offsets[i + 1]]
        if seg.size == 0:
            raise ValueError(f"response {i} has no scored tokens")
        out[i] = _one(seg, reading)
    return out


def token_probabilities(token_logits: np.ndarray) -> np.ndarray:
    """``sigmoid`` of per-token logits (what the guard emits per token)."""
    return sigmoid(np.asarray(token_logits, dtype=np.float64))
