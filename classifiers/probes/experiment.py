"""Attempts: fit a probe on some sources, score it on others, the same way for every basis.

For one concept, an *attempt* is (basis, pooling, C grid). It is run twice:

- **shipped-style**: trained on the training splits of all the concept's sources, scored on
  each source's validation split (in-source numbers);
- **leave-one-source-out (LOSO)**: for each source S, trained on the training splits of the
  other sources and scored on all of S (the generalisation estimate: S is never seen);
- **held-out sources** (``held_out``): sources no fit ever trains on; the shipped-style fit
  is scored on all of each (``cross``). Nothing is chosen on them.

C is chosen by cross-validation on the training data only: leave-one-source-out folds when
there are two or more training sources (C that transfers between sources), grouped k-fold
within the source otherwise. For mean pooling the run-time readings (per-token scores,
policy window; :mod:`.readings`) are scored as well as the pooled score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import structlog

from classifiers.probes.basis import Basis, TokenFeatures
from classifiers.probes.external import report
from classifiers.probes.readings import Reading, response_scores, token_probabilities
from classifiers.probes.sources_data import SourceData
from classifiers.probes.train import ProbeFit, train_probe

log = structlog.get_logger(__name__)

#: Policy windows scored for mean-pooled probes.
READINGS: tuple[Reading, ...] = (Reading(1, "max"), Reading(4), Reading(16), Reading(64))
PROBE_CS: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0)
#: SAE features: floor each feature's scale at the median non-zero scale before the fit
#: (rare features would otherwise get huge raw weights and saturate per-token scores).
SAE_SCALE_FLOOR = 0.5


@dataclass(frozen=True)
class Attempt:
    """What is tried."""

    basis: str
    """Basis spec (:class:`Basis`)."""
    pooling: str
    """mean, max or last (pooled features per transcript), or token (per-token rows, up to
    :data:`TOKENS_PER_ITEM` per transcript, each with its transcript's label)."""
    cs: tuple[float, ...] = PROBE_CS
    """C grid for the CV."""

    @property
    def name(self) -> str:
        """``sae:15/mean``."""
        return f"{self.basis}/{self.pooling}"


@dataclass
class AttemptResult:
    """Numbers of one attempt for one concept."""

    concept: str
    attempt: Attempt
    in_source: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Source -> {"pooled": report, "C": ..., "runtime": {reading: report}} on its val split."""
    loso: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Held-out source -> same, scored on all of it."""
    cross: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Held-out (never trained on) source -> same, the shipped-style fit scored on all of it."""
    c: float = float("nan")
    """C of the shipped-style fit."""
    cv_auroc: float = float("nan")
    """Its CV AUROC."""
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """``"val|source|reading"`` / ``"loso|source|reading"`` / ``"cross|source|reading"`` ->
    (scores, labels), for ROC plots."""

    def block(self, kind: str) -> dict[str, dict[str, Any]]:
        """``in_source`` for ``"val"``, ``cross`` for ``"cross"`` (the curve-key prefixes)."""
        return self.cross if kind == "cross" else self.in_source

    def summary(self) -> dict[str, Any]:
        """Flat numbers for tables."""
        return {
            "concept": self.concept, "basis": self.attempt.basis, "pooling": self.attempt.pooling,
            "C": self.c, "cv_auroc": self.cv_auroc,
            "in_source_auroc": {k: v["pooled"]["auroc"] for k, v in self.in_source.items()},
            "loso_auroc": {k: v["pooled"]["auroc"] for k, v in self.loso.items()},
            "loso_tpr_at_1pct_fpr": {k: v["pooled"]["tpr_at_1pct_fpr"] for k, v in self.loso.items()},
            "cross_auroc": {k: v["pooled"]["auroc"] for k, v in self.cross.items()},
        }


#: Tokens sampled per transcript when a probe is trained on per-token rows (pooling "token").
TOKENS_PER_ITEM = 16
#: Poolings whose probe is read at run time through per-token scores and a policy window.
RUNTIME_POOLINGS = ("mean", "token")


def _token_rows(offsets: np.ndarray, items: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``k`` token rows per item (all when shorter), and the item of each row."""
    rng = np.random.default_rng(seed)
    rows, owner = [], []
    for i in items:
        idx = np.arange(offsets[i], offsets[i + 1])
        if idx.size > k:
            idx = np.sort(rng.choice(idx, size=k, replace=False))
        rows.append(idx)
        owner.append(np.full(idx.size, i))
    return np.concatenate(rows), np.concatenate(owner)


def _stack(feats: TokenFeatures, basis: Basis, parts: Sequence[tuple[SourceData, np.ndarray]],
           pooling: str) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    X, y, g, s = [], [], [], []
    for sd, mask in parts:
        if pooling == "token":
            T, offsets = feats.tokens(basis, sd.keys)
            rows, owner = _token_rows(offsets, np.flatnonzero(mask), TOKENS_PER_ITEM)
            X.append(T[rows])
            y.append(sd.y[owner])
            g.append(sd.groups[owner])
            s.append(np.full(owner.size, sd.name))
            continue
        P = feats.pooled(basis, sd.keys, pooling)
        X.append(P[mask])
        y.append(sd.y[mask])
        g.append(sd.groups[mask])
        s.append(np.full(int(mask.sum()), sd.name))
    stacked = sp.vstack(X, format="csr") if sp.issparse(X[0]) else np.vstack(X)
    return stacked, np.concatenate(y), np.concatenate(g), np.concatenate(s)


def fit_on(feats: TokenFeatures, basis: Basis, parts: Sequence[tuple[SourceData, np.ndarray]],
           pooling: str, cs: Sequence[float]) -> ProbeFit:
    """Fit on the masked rows of several sources (C by LOSO-CV when >= 2 sources)."""
    X, y, g, s = _stack(feats, basis, parts, pooling)
    n_src = len({sd.name for sd, _ in parts})
    floor = SAE_SCALE_FLOOR if basis.kind != "dense" else None
    if n_src >= 2:
        return train_probe(X, y, s, cs=cs, n_folds=n_src, scale_floor_quantile=floor)
    return train_probe(X, y, g, cs=cs, n_folds=3, scale_floor_quantile=floor)


def score_source(feats: TokenFeatures, basis: Basis, fit: ProbeFit, sd: SourceData, pooling: str,
                 readings: Sequence[Reading] = ()) -> dict[str, np.ndarray]:
    """Scores of every item of ``sd``: ``pooled`` and one entry per run-time reading."""
    pooled_as = "mean" if pooling == "token" else pooling
    out = {"pooled": fit.scores(feats.pooled(basis, sd.keys, pooled_as))}
    if readings:
        T, offsets = feats.tokens(basis, sd.keys)
        probs = token_probabilities(fit.logits(T))
        for r in readings:
            out[r.name] = response_scores(probs, offsets, r)
    return out


def _reports(scores: Mapping[str, np.ndarray], y: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {"pooled": report(scores["pooled"][mask], y[mask]), "runtime": {}}
    for name, s in scores.items():
        if name != "pooled":
            out["runtime"][name] = report(s[mask], y[mask])
    return out


def _scored_parts(sources: Mapping[str, SourceData],
                  held_out: Sequence[str]) -> list[tuple[str, SourceData, str, np.ndarray]]:
    """(name, source, kind, mask) of what a shipped-style fit is scored on: all of each
    held-out source (kind ``cross``), the validation split of the others (``val``)."""
    out = []
    for name, sd in sources.items():
        if name in held_out:
            out.append((name, sd, "cross", np.ones(sd.y.size, bool)))
        elif sd.val.any():
            out.append((name, sd, "val", sd.val))
    return out


def _rounded(block: Mapping[str, Any]) -> dict[str, float]:
    return {k: round(v["pooled"]["auroc"], 3) for k, v in block.items()}


def run_attempt(concept: str, attempt: Attempt, feats: TokenFeatures,
                sources: Mapping[str, SourceData], train_names: Sequence[str],
                loso: bool = True, held_out: Sequence[str] = ()) -> tuple[AttemptResult, ProbeFit]:
    """Shipped-style fit + LOSO fits of one attempt; returns the result and the shipped fit.
    Sources named in ``held_out`` are scored in full (``result.cross``), not on a split."""
    basis = Basis.parse(attempt.basis)
    readings = READINGS if attempt.pooling in RUNTIME_POOLINGS else ()
    result = AttemptResult(concept, attempt)
    parts = [(sources[n], ~sources[n].val) for n in train_names]
    fit = fit_on(feats, basis, parts, attempt.pooling, attempt.cs)
    result.c, result.cv_auroc = fit.c, fit.cv_auroc
    for name, sd, kind, mask in _scored_parts(sources, held_out):
        sc = score_source(feats, basis, fit, sd, attempt.pooling, readings)
        result.block(kind)[name] = _reports(sc, sd.y, mask)
        for r, s in sc.items():
            result.curves[f"{kind}|{name}|{r}"] = (s[mask], sd.y[mask])
    if loso and len(train_names) >= 2:
        for held in train_names:
            others = [(sources[n], ~sources[n].val) for n in train_names if n != held]
            f = fit_on(feats, basis, others, attempt.pooling, attempt.cs)
            sd = sources[held]
            sc = score_source(feats, basis, f, sd, attempt.pooling, readings)
            result.loso[held] = _reports(sc, sd.y, np.ones(sd.y.size, bool)) | {"C": f.c}
            for r, s in sc.items():
                result.curves[f"loso|{held}|{r}"] = (s, sd.y)
    log.info("attempt_done", concept=concept, attempt=attempt.name, C=fit.c, cv_auroc=round(fit.cv_auroc, 3),
             in_source=_rounded(result.in_source), loso=_rounded(result.loso), cross=_rounded(result.cross))
    return result, fit


def run_tfidf(concept: str, sources: Mapping[str, SourceData], train_names: Sequence[str],
              loso: bool = True, held_out: Sequence[str] = ()) -> AttemptResult:
    """The TF-IDF text baseline, on the same splits, LOSO folds and held-out sources as
    :func:`run_attempt`."""
    from classifiers.probes.baselines import train_tfidf_baseline

    def fit(parts: Sequence[tuple[SourceData, np.ndarray]]) -> Any:
        texts: list[str] = []
        y, g = [], []
        for sd, mask in parts:
            t = sd.texts()
            texts += [t[i] for i in np.flatnonzero(mask)]
            y.append(sd.y[mask])
            g.append(np.full(int(mask.sum()), sd.name) if len(parts) >= 2 else sd.groups[mask])
        return train_tfidf_baseline(texts, np.concatenate(y), np.concatenate(g),
                                    n_folds=len(parts) if len(parts) >= 2 else 3)

    result = AttemptResult(concept, Attempt("tfidf", "text"))
    model = fit([(sources[n], ~sources[n].val) for n in train_names])
    result.c, result.cv_auroc = model.c, model.cv_auroc
    for name, sd, kind, mask in _scored_parts(sources, held_out):
        s = model.scores(sd.texts())
        result.block(kind)[name] = {"pooled": report(s[mask], sd.y[mask]), "runtime": {}}
        result.curves[f"{kind}|{name}|pooled"] = (s[mask], sd.y[mask])
    if loso and len(train_names) >= 2:
        for held in train_names:
            m = fit([(sources[n], ~sources[n].val) for n in train_names if n != held])
            sd = sources[held]
            s = m.scores(sd.texts())
            result.loso[held] = {"pooled": report(s, sd.y), "runtime": {}, "C": m.c}
            result.curves[f"loso|{held}|pooled"] = (s, sd.y)
    log.info("attempt_done", concept=concept, attempt="tfidf", C=model.c,
             in_source=_rounded(result.in_source), loso=_rounded(result.loso), cross=_rounded(result.cross))
    return result
