"""Probe training, calibration and metrics on small synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from classifiers.probes.calibrate import calibrate, empirical_fpr, fpr_key, threshold_at_fpr
from classifiers.probes.metrics import auprc, auroc, operating_point, roc_png, summary, tpr_at_fpr
from classifiers.probes.train import fit_standardised, sigmoid, train_probe


def _separable(rng, n_pairs=60, d=20, sparse=False):
    """Pairs (one positive, one negative) that differ along feature 3; groups = pair ids."""
    base = rng.gamma(1.0, 1.0, size=(n_pairs, d)) * (rng.random((n_pairs, d)) < 0.3)
    base[:, 3] = rng.random(n_pairs)  # negatives below 1 on feature 3, positives above 2
    pos, neg = base.copy(), base.copy()
    pos[:, 3] += 2.0
    X = np.vstack([pos, neg])
    y = np.r_[np.ones(n_pairs, int), np.zeros(n_pairs, int)]
    groups = np.r_[np.arange(n_pairs), np.arange(n_pairs)].astype(str)
    return (sp.csr_matrix(X) if sparse else X), y, groups


@pytest.mark.parametrize("sparse", [False, True])
def test_probe_separates_a_separable_set(rng, sparse):
    X, y, groups = _separable(rng, sparse=sparse)
    fit = train_probe(X, y, groups, cs=(0.01, 1.0), n_folds=4)
    assert fit.cv_auroc == 1.0
    assert auroc(fit.scores(X), y) == 1.0
    X_new, y_new, _ = _separable(np.random.default_rng(1), sparse=sparse)
    assert auroc(fit.scores(X_new), y_new) == 1.0
    assert fit.weights.shape == (20,) and int(np.argmax(fit.weights)) == 3
    assert fit.n_samples == 120 and fit.n_positive == 60 and fit.n_groups == 60


@pytest.mark.parametrize("sparse", [False, True])
def test_folded_weights_reproduce_the_standardised_model(rng, sparse):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X = rng.normal(3.0, 2.0, size=(200, 6)) * rng.random(6)
    y = (X @ rng.normal(size=6) + rng.normal(size=200) > np.median(X @ rng.normal(size=6))).astype(
        int
    )
    y[:2] = (0, 1)
    Xin = sp.csr_matrix(X) if sparse else X
    w, b = fit_standardised(Xin, y, c=0.5)
    scaler = StandardScaler(with_mean=not sparse).fit(Xin)
    ref = LogisticRegression(C=0.5, class_weight="balanced", max_iter=2000).fit(
        scaler.transform(Xin), y
    )
    expected = ref.predict_proba(scaler.transform(Xin))[:, 1]
    got = sigmoid(np.asarray(Xin @ w).ravel() + b)
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_cv_picks_c_with_groups_and_reports_every_candidate(rng):
    X, y, groups = _separable(rng)
    fit = train_probe(X, y, groups, cs=(0.001, 0.1, 10.0), n_folds=3)
    assert [c for c, _ in fit.cv_by_c] == [0.001, 0.1, 10.0]
    assert fit.c == min(c for c, auc in fit.cv_by_c if auc == max(a for _, a in fit.cv_by_c))
    assert fit.n_folds == 3


def test_grouped_cv_is_not_fooled_by_memorised_pairs(rng):
    # label is decided per pair at random, features are identical within a group: any
    # in-fold memorisation would look perfect, grouped CV must report chance.
    n = 80
    feats = rng.normal(size=(n, 30))
    X = np.vstack([feats, feats])
    y = np.r_[rng.integers(0, 2, n), np.zeros(n, int)]
    y[n:] = y[:n]
    y[0], y[n] = 1, 1
    y[1], y[n + 1] = 0, 0
    groups = np.r_[np.arange(n), np.arange(n)].astype(str)
    fit = train_probe(X, y, groups, cs=(1.0,), n_folds=5)
    assert fit.cv_auroc < 0.75


def test_train_probe_rejects_bad_inputs(rng):
    X, y, groups = _separable(rng)
    with pytest.raises(ValueError, match="both labels"):
        train_probe(X, np.ones_like(y), groups)
    with pytest.raises(ValueError, match="rows"):
        train_probe(X, y[:-1], groups)
    with pytest.raises(ValueError, match="two groups"):
        train_probe(X, y, np.zeros(len(y), str))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0, allow_nan=False, width=32), min_size=1, max_size=400),
    st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.5]),
)
def test_calibrated_threshold_meets_the_target_on_its_negatives(neg, target):
    neg = np.asarray(neg)
    t = threshold_at_fpr(neg, target)
    assert empirical_fpr(neg, t) <= target
    # smallest such threshold: the largest negative below it would break the target
    below = neg[neg < t]
    if below.size:
        assert empirical_fpr(neg, below.max()) > target
    # the same holds when scores are compared in float32, as the daemon does
    assert np.mean(neg.astype(np.float32) >= np.float32(t)) <= target


def test_calibration_with_ties_and_keys():
    neg = np.array([0.9, 0.9, 0.9, 0.2, 0.1] + [0.0] * 95)
    t = threshold_at_fpr(neg, 0.02)  # two false positives allowed, three tied at 0.9
    assert t > 0.9 and empirical_fpr(neg, t) == 0.0
    assert 0.2 < threshold_at_fpr(neg, 0.03) <= 0.9
    assert calibrate(neg, (0.01, 0.05)).keys() == {"0.01", "0.05"}
    assert fpr_key(0.001) == "0.001"
    with pytest.raises(ValueError):
        threshold_at_fpr([], 0.01)
    with pytest.raises(ValueError):
        threshold_at_fpr(neg, 1.0)


def test_metrics_on_known_cases():
    labels = [0, 0, 1, 1]
    assert auroc([0.1, 0.4, 0.35, 0.8], labels) == 0.75
    assert auprc([0.1, 0.2, 0.8, 0.9], labels) == 1.0
    with pytest.raises(ValueError, match="positive and one negative"):
        auroc([0.1, 0.2], [1, 1])


def test_tpr_at_fpr_uses_a_threshold_that_respects_the_fpr(rng):
    neg = rng.normal(0, 1, 1000)
    pos = rng.normal(2, 1, 500)
    scores = np.r_[neg, pos]
    labels = np.r_[np.zeros(1000, int), np.ones(500, int)]
    point = operating_point(scores, labels, 0.01)
    assert point.fpr <= 0.01
    assert point.tpr == tpr_at_fpr(scores, labels, 0.01)
    assert point.tpr == pytest.approx(np.mean(pos >= np.sort(neg)[-11]), abs=0.01)
    # a perfect separator is at TPR 1 whatever the target
    assert tpr_at_fpr([0.0, 0.1, 0.9, 1.0], [0, 0, 1, 1], 0.0) == 1.0
    assert summary(scores, labels)["n"] == 1500


def test_roc_png_writes_an_image(tmp_path, rng):
    scores = rng.random(50)
    labels = (scores + rng.normal(0, 0.3, 50) > 0.5).astype(int)
    out = roc_png(tmp_path / "plots" / "roc.png", {"probe": (scores, labels)}, title="t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
