"""Evaluation metrics for probe scores and a ROC plot helper.

Definitions (labels: 1 = concept present):

- ``auroc``: area under the ROC curve (probability a random positive outscores a random
  negative, ties counting one half).
- ``auprc``: average precision (step-wise area under precision-recall, scikit-learn's
  ``average_precision_score``); its chance level is the positive share, not 0.5.
- ``auroc_interval``: a 95% percentile interval for the AUROC from a stratified bootstrap
  (positives and negatives resampled separately, each item independently: for sets of
  contrastive pairs the interval is approximate). Two AUROCs whose intervals overlap
  widely are not different results.
- ``tpr_at_fpr``: the threshold is :func:`calibrate.threshold_at_fpr` on the *negatives of
  the same set* (the smallest threshold with empirical FPR <= target, ``score >= t`` is
  positive), and the result is the share of positives at or above it. Measured this way
  the FPR can only be <= target, never above it.

Each metric needs both classes; with one class they raise ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from classifiers.probes.calibrate import threshold_at_fpr


def _as_arrays(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores but {y.size} labels")
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError("labels must be 0 or 1")
    y = y.astype(np.int64)
    if y.min(initial=1) == y.max(initial=0) or s.size == 0:
        raise ValueError("metrics need at least one positive and one negative example")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return s, y


def auroc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve."""
    s, y = _as_arrays(scores, labels)
    return float(roc_auc_score(y, s))


#: Bootstrap resamples for :func:`auroc_interval`.
BOOTSTRAP_RESAMPLES = 200


def auroc_interval(scores: ArrayLike, labels: ArrayLike, level: float = 0.95,
                   resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the AUROC under a stratified bootstrap (deterministic: fixed seed)."""
    s, y = _as_arrays(scores, labels)
    pos, neg = s[y == 1], s[y == 0]
    rng = np.random.default_rng(seed)
    values = np.empty(resamples)
    for b in range(resamples):
        p = pos[rng.integers(0, pos.size, pos.size)]
        n = np.sort(neg[rng.integers(0, neg.size, neg.size)])
        below = np.searchsorted(n, p, side="left")
        ties = np.searchsorted(n, p, side="right") - below
        values[b] = (below.sum() + 0.5 * ties.sum()) / (pos.size * neg.size)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(values, [tail, 1.0 - tail])
    return float(lo), float(hi)


def auprc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Average precision (area under the precision-recall curve)."""
    s, y = _as_arrays(scores, labels)
    return float(average_precision_score(y, s))


@dataclass(frozen=True)
class OperatingPoint:
    """Where a threshold calibrated on a set's negatives puts that set."""

    threshold: float
    """Score threshold (``score >= threshold`` is positive)."""
    tpr: float
    """Share of positives flagged."""
    fpr: float
    """Share of negatives flagged (<= the target by construction)."""


def operating_point(scores: ArrayLike, labels: ArrayLike, fpr: float = 0.01) -> OperatingPoint:
    """Threshold at ``fpr`` on the negatives, and the TPR/FPR it achieves."""
    s, y = _as_arrays(scores, labels)
    threshold = threshold_at_fpr(s[y == 0], fpr)
    return OperatingPoint(
        threshold=threshold,
        tpr=float(np.mean(s[y == 1] >= threshold)),
        fpr=float(np.mean(s[y == 0] >= threshold)),
    )


def tpr_at_fpr(scores: ArrayLike, labels: ArrayLike, fpr: float = 0.01) -> float:
    """True-positive rate at the threshold whose FPR on the negatives is <= ``fpr``."""
    return operating_point(scores, labels, fpr).tpr


def summary(scores: ArrayLike, labels: ArrayLike) -> dict[str, float | int]:
    """n, auroc, auprc and TPR at 1% / 5% FPR in one dict."""
    s, y = _as_arrays(scores, labels)
    return {
        "n": int(s.size),
        "n_positive": int(y.sum()),
        "auroc": auroc(s, y),
        "auprc": auprc(s, y),
        "tpr_at_1pct_fpr": tpr_at_fpr(s, y, 0.01),
        "tpr_at_5pct_fpr": tpr_at_fpr(s, y, 0.05),
    }


@dataclass(frozen=True)
class RocCurve:
    """One curve for :func:`roc_png`."""

    name: str
    """Legend label (e.g. "sae probe / truthfulqa")."""
    scores: Sequence[float] | np.ndarray
    """Scores of every example."""
    labels: Sequence[int] | np.ndarray
    """0/1 label of every example."""


def roc_png(
    path: str | Path,
    curves: Sequence[RocCurve] | Mapping[str, tuple[ArrayLike, ArrayLike]],
    title: str = "ROC",
) -> Path:
    """Plot ROC curves (AUROC in the legend, a dashed line at 1% FPR) to a PNG via Agg."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if isinstance(curves, Mapping):
        curves = [RocCurve(name, s, y) for name, (s, y) in curves.items()]  # type: ignore[arg-type]
    curves = list(curves)
    many = len(curves) > 6  # legend below the axes, where it cannot hide the curves
    fig = Figure(figsize=(5.5, 5.0 + (0.16 * len(curves) if many else 0.0)), dpi=120)
    FigureCanvasAgg(fig)  # explicit Agg canvas: no global backend switch, no display needed
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1, label="chance")
    cmap = matplotlib.colormaps["tab20" if len(curves) > 10 else "tab10"]
    colours = [cmap(i) for i in range(cmap.N)]
    for i, curve in enumerate(curves):
        s, y = _as_arrays(curve.scores, curve.labels)
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, linewidth=1.5, color=colours[i % len(colours)],
                label=f"{curve.name} (AUROC {auroc(s, y):.3f})")
    ax.axvline(0.01, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(title)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    if many:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=7, frameon=False)
    else:
        ax.legend(loc="lower right", fontsize=7)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    return out
