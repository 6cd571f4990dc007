"""Logistic-regression probe for one concept over a feature matrix (dense or scipy sparse).

Features are standardised inside training (dense: centred and scaled; sparse: scaled only,
so the matrix stays sparse), and the standardisation is folded back into the weights:

    logit = w' . (x - mu) / s + b'  =  (w' / s) . x + (b' - sum(w' * mu / s))

so the saved probe is a plain ``sigmoid(x @ w + b)`` over raw features, the one matmul the
daemon does per token. The regularisation ``C`` is chosen by grouped cross-validation
(:mod:`classifiers.probes.cv`); classes are balanced with ``class_weight="balanced"``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import structlog
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from classifiers.probes.cv import DEFAULT_CS, CvResult, select_c

log = structlog.get_logger(__name__)

Penalty = Literal["l2", "l1"]


@dataclass(frozen=True)
class ProbeFit:
    """A trained probe over raw features: ``score = sigmoid(x @ weights + bias)``."""

    weights: np.ndarray
    """Weight per feature, float64 [d], standardisation already folded in."""
    bias: float
    """Intercept (standardisation folded in)."""
    c: float
    """Inverse regularisation strength chosen by grouped CV."""
    cv_auroc: float
    """Mean grouped-CV AUROC at ``c`` on the training source."""
    cv_auroc_std: float
    """Standard deviation of the fold AUROCs at ``c``."""
    cv_by_c: tuple[tuple[float, float], ...]
    """(C, mean fold AUROC) for each candidate."""
    n_samples: int
    """Training examples."""
    n_positive: int
    """Positive training examples."""
    n_groups: int
    """Distinct groups in the training data."""
    n_folds: int
    """CV folds used."""
    penalty: str
    """"l2" or "l1"."""
    seconds: float
    """Wall time of CV + final fit."""

    @classmethod
    def saved(cls, weights: np.ndarray, bias: float) -> ProbeFit:
        """A probe as stored in a pack (weights and bias only, no training record), for scoring."""
        return cls(weights, bias, 0, 0, 0, (), 0, 0, 0, 0, "l2", 0)

    def logits(self, X: Any) -> np.ndarray:
        """``X @ weights + bias`` for a dense or sparse [n, d] matrix."""
        return np.asarray(X @ self.weights).ravel() + self.bias

    def scores(self, X: Any) -> np.ndarray:
        """Probe scores in (0, 1)."""
        return sigmoid(self.logits(X))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def _scaler(X: Any) -> StandardScaler:
    return StandardScaler(with_mean=not sp.issparse(X))


def _model(c: float, penalty: Penalty, max_iter: int, seed: int) -> LogisticRegression:
    if penalty == "l1":
        return LogisticRegression(
            C=c,
            l1_ratio=1.0,
            solver="liblinear",
            class_weight="balanced",
            max_iter=max_iter,
            random_state=seed,
        )
    return LogisticRegression(C=c, class_weight="balanced", max_iter=max_iter, random_state=seed)


def fit_standardised(
    X: Any, y: np.ndarray, c: float, penalty: Penalty = "l2", max_iter: int = 2000, seed: int = 0,
    scale_floor_quantile: float | None = None,
) -> tuple[np.ndarray, float]:
    """Fit on standardised features and return (weights, bias) over *raw* features.

    ``scale_floor_quantile``: floor every feature's scale at this quantile of the non-zero
    scales. Sparse features that are rare in training have tiny standard deviations, so
    their raw weights (``w_std / scale``) explode and one unseen activation saturates the
    score; the floor keeps rare features from being up-weighted beyond common ones.
    """
    scaler = _scaler(X).fit(X)
    if scale_floor_quantile is not None:
        nonzero = scaler.scale_[scaler.scale_ > 0]
        if nonzero.size:
            scaler.scale_ = np.maximum(scaler.scale_, np.quantile(nonzero, scale_floor_quantile))
    model = _model(c, penalty, max_iter, seed).fit(scaler.transform(X), y)
    w_std = model.coef_.ravel().astype(np.float64)
    scale = np.asarray(scaler.scale_, dtype=np.float64)
    weights = w_std / scale
    # with_mean=False (sparse input) still sets mean_, but transform() does not subtract it
    mean = np.asarray(scaler.mean_, np.float64) if scaler.with_mean else np.zeros_like(scale)
    bias = float(model.intercept_[0] - np.dot(weights, mean))
    return weights, bias


def _check(X: Any, y: Any, groups: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).ravel()
    groups = np.asarray(groups).ravel()
    if X.shape[0] != y.size or y.size != groups.size:
        raise ValueError(f"X has {X.shape[0]} rows, y {y.size}, groups {groups.size}")
    if not np.all(np.isin(y, (0, 1))) or len(np.unique(y)) != 2:
        raise ValueError("y must hold both labels 0 and 1")
    return y.astype(np.int64), groups


def train_probe(
    X: Any,
    y: Sequence[int] | np.ndarray,
    groups: Sequence[str] | np.ndarray,
    *,
    cs: Sequence[float] = DEFAULT_CS,
    n_folds: int = 5,
    penalty: Penalty = "l2",
    max_iter: int = 2000,
    seed: int = 0,
    scale_floor_quantile: float | None = None,
) -> ProbeFit:
    """Choose C by grouped CV on (X, y, groups), refit on everything, fold the scaling in."""
    start = time.perf_counter()
    y_arr, groups_arr = _check(X, y, groups)
    if sp.issparse(X):
        X = sp.csr_matrix(X)

    def fit_and_score(x_tr: Any, y_tr: np.ndarray, x_te: Any, c: float) -> np.ndarray:
        w, b = fit_standardised(x_tr, y_tr, c, penalty, max_iter, seed, scale_floor_quantile)
        return np.asarray(x_te @ w).ravel() + b

    cv: CvResult = select_c(fit_and_score, X, y_arr, groups_arr, cs, n_folds)
    weights, bias = fit_standardised(X, y_arr, cv.best_c, penalty, max_iter, seed, scale_floor_quantile)
    fit = ProbeFit(
        weights=weights,
        bias=bias,
        c=cv.best_c,
        cv_auroc=cv.best_auroc,
        cv_auroc_std=cv.best_auroc_std,
        cv_by_c=cv.by_c,
        n_samples=int(y_arr.size),
        n_positive=int(y_arr.sum()),
        n_groups=int(len(np.unique(groups_arr))),
        n_folds=cv.n_folds,
        penalty=penalty,
        seconds=time.perf_counter() - start,
    )
    log.info(
        "probe_trained",
        c=fit.c,
        cv_auroc=round(fit.cv_auroc, 4),
        n=fit.n_samples,
        d=int(weights.size),
        folds=fit.n_folds,
        seconds=round(fit.seconds, 2),
    )
    return fit
