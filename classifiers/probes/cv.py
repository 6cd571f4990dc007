"""Grouped cross-validation used to choose a regularisation strength.

Folds come from :class:`sklearn.model_selection.GroupKFold` over the transcripts'
``group`` ids, so the two members of a contrastive pair (and every variant of a question)
are always on the same side of a fold: the CV score is not inflated by near-duplicates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

#: Default grid of inverse regularisation strengths (logistic regression ``C``).
DEFAULT_CS: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0)


@dataclass(frozen=True)
class CvResult:
    """Grouped-CV AUROC per candidate C and the winner."""

    best_c: float
    """C with the highest mean fold AUROC (ties go to the smaller C: stronger penalty)."""
    best_auroc: float
    """Mean fold AUROC of ``best_c``."""
    best_auroc_std: float
    """Standard deviation of the fold AUROCs of ``best_c``."""
    by_c: tuple[tuple[float, float], ...]
    """(C, mean fold AUROC) for every candidate, in grid order."""
    n_folds: int
    """Folds actually used (fewer than asked when there are few groups)."""


def fold_indices(
    y: np.ndarray, groups: Sequence[str] | np.ndarray, n_folds: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index arrays; only folds whose test part has both classes."""
    groups = np.asarray(groups)
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError("grouped cross-validation needs at least two groups")
    splitter = GroupKFold(n_splits=min(n_folds, n_groups))
    folds = [
        (train, test)
        for train, test in splitter.split(np.zeros(len(y)), y, groups)
        if len(np.unique(y[test])) == 2 and len(np.unique(y[train])) == 2
    ]
    if not folds:
        raise ValueError("no fold has both classes on both sides; add data or groups")
    return folds


def select_c(
    fit_and_score: Callable[[Any, np.ndarray, Any, float], np.ndarray],
    X: Any,
    y: np.ndarray,
    groups: Sequence[str] | np.ndarray,
    cs: Sequence[float] = DEFAULT_CS,
    n_folds: int = 5,
    take: Callable[[Any, np.ndarray], Any] | None = None,
) -> CvResult:
    """Pick C by mean grouped-CV AUROC.

    ``fit_and_score(X_train, y_train, X_test, C)`` must fit on the training part (any
    preprocessing included, so nothing leaks from the test fold) and return test scores.
    ``take(X, idx)`` selects rows (default ``X[idx]``; pass one for lists of strings).
    """
    if not cs:
        raise ValueError("need at least one candidate C")
    take = take or (lambda data, idx: data[idx])
    folds = fold_indices(y, groups, n_folds)
    per_c: list[tuple[float, float, float]] = []
    for c in cs:
        aucs = []
        for train, test in folds:
            scores = fit_and_score(take(X, train), y[train], take(X, test), float(c))
            aucs.append(roc_auc_score(y[test], scores))
        per_c.append((float(c), float(np.mean(aucs)), float(np.std(aucs))))
    best = per_c[0]
    for cand in sorted(per_c, key=lambda t: t[0]):
        if cand[1] > best[1] + 1e-12 or (abs(cand[1] - best[1]) <= 1e-12 and cand[0] < best[0]):
            best = cand
    return CvResult(
        best_c=best[0],
        best_auroc=best[1],
        best_auroc_std=best[2],
        by_c=tuple((c, m) for c, m, _ in per_c),
        n_folds=len(folds),
    )
