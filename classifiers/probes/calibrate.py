"""Score thresholds at a target false-positive rate, measured on negative examples.

Convention used everywhere in saeguard: a score is flagged positive when
``score >= threshold``. :func:`threshold_at_fpr` returns the smallest threshold whose
empirical FPR on the given negatives is ``<= target``:

- with ``n`` negatives at most ``k = floor(target * n)`` of them may be flagged;
- let ``v`` be the ``(k+1)``-th largest negative score. Any threshold ``<= v`` flags at
  least ``k+1`` negatives, so the answer is the smallest value strictly above ``v``;
- that value is taken in float32 (the dtype the daemon scores in), so the same threshold
  works whether scores are compared as float32 or float64;
- ties are handled: every negative equal to ``v`` is below the threshold.

Consequences: with fewer than ``1 / target`` negatives, ``k = 0`` and the threshold sits
just above the highest negative (empirical FPR 0): collect enough negatives for the rate
you ask for. With sigmoid scores saturated at 1.0 the threshold can exceed 1.0, which means
"never fires at this rate" and is reported as such rather than silently clipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import structlog
from numpy.typing import ArrayLike

log = structlog.get_logger(__name__)


def fpr_key(fpr: float) -> str:
    """The string key a target FPR is saved under in probes.json (0.01 -> "0.01")."""
    return format(float(fpr), "g")


def _above(value: float) -> float:
    """Smallest float32 strictly greater than ``value`` (returned as a Python float)."""
    candidate = np.float32(value)
    while float(candidate) <= value:
        candidate = np.nextafter(candidate, np.float32(np.inf))
    return float(candidate)


def threshold_at_fpr(negative_scores: ArrayLike, target_fpr: float) -> float:
    """Smallest threshold t with ``mean(negatives >= t) <= target_fpr``."""
    if not 0.0 <= target_fpr < 1.0:
        raise ValueError(f"target_fpr must be in [0, 1), got {target_fpr}")
    neg = np.asarray(negative_scores, dtype=np.float64).ravel()
    if neg.size == 0:
        raise ValueError("need at least one negative score to calibrate")
    if not np.all(np.isfinite(neg)):
        raise ValueError("negative scores must be finite")
    allowed = math.floor(target_fpr * neg.size + 1e-9)
    if allowed >= neg.size:  # pragma: no cover - impossible for target < 1
        allowed = neg.size - 1
    ordered = np.sort(neg)[::-1]
    threshold = _above(float(ordered[allowed]))
    if neg.size * target_fpr < 1.0:
        log.warning(
            "calibration_too_few_negatives",
            negatives=int(neg.size),
            target_fpr=target_fpr,
            note="threshold is above every negative; FPR resolution is 1/negatives",
        )
    return threshold


def empirical_fpr(negative_scores: ArrayLike, threshold: float) -> float:
    """Fraction of negatives flagged (``score >= threshold``)."""
    neg = np.asarray(negative_scores, dtype=np.float64).ravel()
    if neg.size == 0:
        raise ValueError("no negative scores")
    return float(np.mean(neg >= threshold))


def calibrate(negative_scores: ArrayLike, fprs: Iterable[float] = (0.01, 0.05)) -> dict[str, float]:
    """``{fpr_key(fpr): threshold}`` for each target rate, ready for probes.json."""
    neg = np.asarray(negative_scores, dtype=np.float64).ravel()
    return {fpr_key(fpr): threshold_at_fpr(neg, fpr) for fpr in fprs}


def check_thresholds(
    negative_scores: ArrayLike, thresholds: Mapping[str, float]
) -> dict[str, float]:
    """Achieved FPR on ``negative_scores`` for each stored threshold (for reports)."""
    return {key: empirical_fpr(negative_scores, value) for key, value in thresholds.items()}
