"""TF-IDF + logistic regression over the assistant's text: the no-model-internals baseline.

Trained with the same grouped CV as the probes (the vectoriser is refit inside every fold,
so the test fold's vocabulary never leaks), on the same splits, and scored on the same
validation and cross-source sets. A monitor that reads the model's internals has to beat it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import structlog
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from classifiers.datasets.types import Transcript
from classifiers.probes.cv import select_c

log = structlog.get_logger(__name__)

#: TF-IDF features are already scaled; weaker penalties than the probe grid tend to win.
_BASELINE_CS: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0)


@dataclass(frozen=True, eq=False)
class TfidfBaseline:
    """A fitted text classifier."""

    pipeline: Pipeline
    """Fitted TfidfVectorizer -> LogisticRegression."""
    c: float
    """Chosen inverse regularisation strength."""
    cv_auroc: float
    """Mean grouped-CV AUROC at ``c``."""
    cv_auroc_std: float
    """Standard deviation of the fold AUROCs."""
    cv_by_c: tuple[tuple[float, float], ...]
    """(C, mean fold AUROC) per candidate."""
    n_samples: int
    """Training texts."""
    seconds: float
    """Wall time of CV + final fit."""

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Probability of the positive class per text."""
        return np.asarray(self.pipeline.predict_proba(list(texts))[:, 1])

    def score_transcripts(self, transcripts: Iterable[Transcript]) -> np.ndarray:
        """Scores of the assistant turns."""
        return self.scores(assistant_texts(transcripts))


def assistant_texts(transcripts: Iterable[Transcript]) -> list[str]:
    """The final assistant turn of each transcript (what the baseline sees)."""
    return [t.assistant_text for t in transcripts]


def _pipeline(c: float, ngram_max: int, max_features: int, seed: int) -> Pipeline:
    return Pipeline(
        [
            (
                "tfidf",
                TfidfVectorizer(
                    ngram_range=(1, ngram_max),
                    max_features=max_features,
                    sublinear_tf=True,
                ),
            ),
            (
                "lr",
                LogisticRegression(
                    C=c,
                    class_weight="balanced",
                    max_iter=2000,
                    random_state=seed,
                ),
            ),
        ]
    )


def train_tfidf_baseline(
    texts: Sequence[str],
    y: Sequence[int] | np.ndarray,
    groups: Sequence[str] | np.ndarray,
    *,
    cs: Sequence[float] = _BASELINE_CS,
    n_folds: int = 5,
    ngram_max: int = 2,
    max_features: int = 50_000,
    seed: int = 0,
) -> TfidfBaseline:
    """Choose C by grouped CV, then fit on all ``texts``."""
    start = time.perf_counter()
    texts_arr = list(texts)
    y_arr = np.asarray(y).ravel().astype(np.int64)
    if len(texts_arr) != y_arr.size or y_arr.size != len(groups):
        raise ValueError("texts, y and groups must have the same length")

    def fit_and_score(x_tr: list[str], y_tr: np.ndarray, x_te: list[str], c: float) -> np.ndarray:
        fitted = _pipeline(c, ngram_max, max_features, seed).fit(x_tr, y_tr)
        return np.asarray(fitted.predict_proba(x_te)[:, 1])

    cv = select_c(
        fit_and_score,
        texts_arr,
        y_arr,
        np.asarray(groups),
        cs,
        n_folds,
        take=lambda data, idx: [data[i] for i in idx],
    )
    pipeline = _pipeline(cv.best_c, ngram_max, max_features, seed).fit(texts_arr, y_arr)
    baseline = TfidfBaseline(
        pipeline=pipeline,
        c=cv.best_c,
        cv_auroc=cv.best_auroc,
        cv_auroc_std=cv.best_auroc_std,
        cv_by_c=cv.by_c,
        n_samples=len(texts_arr),
        seconds=time.perf_counter() - start,
    )
    log.info(
        "tfidf_baseline_trained",
        c=baseline.c,
        cv_auroc=round(baseline.cv_auroc, 4),
        n=baseline.n_samples,
    )
    return baseline


def train_tfidf_on_transcripts(
    transcripts: Sequence[Transcript], **kwargs: object
) -> TfidfBaseline:
    """:func:`train_tfidf_baseline` on the transcripts' assistant text, labels and groups."""
    return train_tfidf_baseline(
        assistant_texts(transcripts),
        [t.label for t in transcripts],
        [t.group for t in transcripts],
        **kwargs,  # type: ignore[arg-type]
    )
