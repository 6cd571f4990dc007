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

A reading ``at="response_end"`` (the policy's ``at: response_end``) is tested once, when the
answer has ended, so R is the pool of the *last* ``window`` scores only: ``window=1`` is the
last token's score, a window as long as the answer is the mean over all of it.
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
    at: str = "every_token"
    """``every_token`` or ``response_end`` (the policy's ``at``)."""

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("window must be >= 1")
        if self.reduce not in ("mean", "max"):
            raise ValueError("reduce must be mean or max")
        if self.at not in ("every_token", "response_end"):
            raise ValueError("at must be every_token or response_end")

    @property
    def name(self) -> str:
        """``mean16``, ``max1``, ``end_max1`` (read at the end of the response) ..."""
        return ("end_" if self.at == "response_end" else "") + f"{self.reduce}{self.window}"

    def to_json(self) -> dict[str, object]:
        """The policy ``window`` mapping (with ``at`` when it is read at the end)."""
        out: dict[str, object] = {"tokens": self.window, "reduce": self.reduce}
        if self.at == "response_end":
            out["at"] = self.at
        return out

    @classmethod
    def from_json(cls, w: dict[str, object]) -> Reading:
        """From a ``runtime_window`` mapping (:meth:`to_json`)."""
        return cls(int(str(w["tokens"])), str(w.get("reduce") or "mean"), str(w.get("at") or "every_token"))


def _one(scores: np.ndarray, reading: Reading) -> float:
    n = scores.size
    if reading.at == "response_end":
        tail = scores[-reading.window :]
        return float(tail.max() if reading.reduce == "max" else tail.mean())
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
