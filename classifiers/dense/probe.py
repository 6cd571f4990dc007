"""Linear probes on pooled residuals: one per layer, and an ensemble over layers.

A probe standardises its features with the training set's mean and standard deviation,
then applies an L2 logistic regression whose ``C`` is chosen by grouped cross-validation on
the training set only (pairs and questions never straddle folds). The ensemble averages
the layers' standardised logits (each layer's logit divided by its spread on the training
set), so no layer dominates by scale. Nothing is chosen on a held-out source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

C_GRID = (1e-3, 1e-2, 1e-1, 1.0)


@dataclass(frozen=True)
class DenseProbe:
    """``logit(x) = ((x - mu) / sigma) @ w + b``; ``scale`` is the logit spread on the training set."""

    layer: int
    pooling: str
    mu: np.ndarray
    sigma: np.ndarray
    w: np.ndarray
    b: float
    C: float
    cv_auroc: float
    scale: float

    def logit(self, X: np.ndarray) -> np.ndarray:
        out: np.ndarray = ((X - self.mu) / self.sigma) @ self.w + self.b
        return out


def _standardise(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = X.mean(0)
    sigma = X.std(0) + 1e-6
    return mu, sigma


def _lr(C: float) -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=3000)


def fit_probe(X: np.ndarray, y: np.ndarray, groups: Sequence[str], layer: int, pooling: str,
              Cs: Sequence[float] = C_GRID, folds: int = 5) -> DenseProbe:
    """Fit on all of (X, y) with the C that maximises grouped-CV AUROC."""
    y = np.asarray(y)
    g = np.asarray(groups)
    n_folds = min(folds, len(set(g)))
    best_c, best_auc = Cs[0], -1.0
    for C in Cs:
        scores = np.zeros(len(y))
        for tr, te in GroupKFold(n_splits=n_folds).split(X, y, g):
            mu, sigma = _standardise(X[tr])
            clf = _lr(C).fit((X[tr] - mu) / sigma, y[tr])
            scores[te] = clf.decision_function((X[te] - mu) / sigma)
        auc = float(roc_auc_score(y, scores))
        if auc > best_auc:
            best_c, best_auc = C, auc
    mu, sigma = _standardise(X)
    clf = _lr(best_c).fit((X - mu) / sigma, y)
    w, b = clf.coef_[0].astype(np.float64), float(clf.intercept_[0])
    train_logits = ((X - mu) / sigma) @ w + b
    return DenseProbe(layer, pooling, mu, sigma, w, b, best_c, best_auc, float(train_logits.std() + 1e-9))


def ensemble_logit(probes: Sequence[DenseProbe], features: dict[int, np.ndarray]) -> np.ndarray:
    """Mean of the layers' standardised logits (``features``: layer -> pooled X)."""
    out: np.ndarray = np.mean([p.logit(features[p.layer]) / p.scale for p in probes], axis=0)
    return out
