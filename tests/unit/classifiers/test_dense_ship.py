"""Shipping dense probes: the rows they train on, the folded weights the guard scores with,
and response scores that are what a policy window computes."""

from __future__ import annotations

import numpy as np
import pytest

from classifiers.dense.extract import TokenResiduals
from classifiers.dense.probe import fit_probe
from classifiers.dense.ship import (
    effective_feature_weights,
    fit_dense,
    fold,
    reading_scores,
    token_logits,
    token_rows,
)
from classifiers.probes.metrics import auroc
from classifiers.probes.readings import Reading


def toy_tokens(lengths, d=12, seed=0, signal_items=()):
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    X = rng.normal(size=(int(offsets[-1]), d)) * 3.0 + 50.0
    for i in signal_items:  # positive answers carry +6 along feature 4 on every token
        X[offsets[i] : offsets[i + 1], 4] += 6.0
    return TokenResiduals(7, X.astype(np.float16), offsets)


def test_rows_are_up_to_n_tokens_per_answer_and_always_include_the_last():
    tok = toy_tokens([3, 40, 1])
    X, owner = token_rows(tok, [0, 1, 2], per_item=16)
    assert np.bincount(owner).tolist() == [3, 16, 1]
    assert X.dtype == np.float32
    np.testing.assert_array_equal(X[3 + 15], tok.X[tok.offsets[2] - 1].astype(np.float32))


def test_folded_weights_give_the_standardised_probes_logits():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 12)) * 4 + 30
    y = (X[:, 2] > 30).astype(int)
    probe = fit_probe(X, y, [str(i) for i in range(200)], 7, "token")
    w, b = fold(probe)
    np.testing.assert_allclose(X @ w.astype(np.float64) + b, probe.logit(X), rtol=1e-4, atol=1e-3)


def test_reading_scores_are_the_policy_windows_maximum():
    tok = toy_tokens([5, 3])
    logits = np.array([-3.0, 2.0, -3.0, -3.0, -3.0, 0.0, 0.0, 0.0])
    sig = 1 / (1 + np.exp(-logits))
    max1 = reading_scores(logits, tok, [0, 1], Reading(1, "max"))
    np.testing.assert_allclose(max1, [sig[1], 0.5])
    mean2 = reading_scores(logits, tok, [0], Reading(2, "mean"))
    np.testing.assert_allclose(mean2, [(sig[0] + sig[1]) / 2])


def test_a_token_level_signal_is_found_and_scores_held_out_answers():
    n = 120
    lengths = [8 + (i % 5) for i in range(n)]
    pos = [i for i in range(n) if i % 2]
    tok = toy_tokens(lengths, signal_items=pos)
    y = np.array([i % 2 for i in range(n)])
    groups = [f"g{i // 2}" for i in range(n)]
    fit = fit_dense(tok, y, groups, list(range(80)), layer=7)
    logits = token_logits(tok, fit.w, fit.b)
    r = reading_scores(logits, tok, range(80, n), Reading(4, "mean"))
    assert auroc(r, y[80:]) > 0.9
    assert int(np.argmax(np.abs(fit.w))) == 4


def test_effective_feature_weights_are_the_decoder_projected_on_the_probe():
    W_dec = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    assert effective_feature_weights(W_dec, np.array([0.5, -1.0])).tolist() == pytest.approx([0.5, -2.0, -0.5])


def test_last_token_rows_learn_what_only_the_last_token_carries_and_read_it_at_the_end():
    """Answers whose label shows only in their last token: a probe on last-token rows,
    read at the end of the answer, separates them; the answer mean dilutes it."""
    rng = np.random.default_rng(3)
    lengths = rng.integers(20, 40, size=120)
    tok = toy_tokens(lengths, seed=3)
    y = np.arange(120) % 2
    X = tok.X.astype(np.float32)
    for i in np.flatnonzero(y):
        X[tok.offsets[i + 1] - 1, 4] += 12.0
    tok = TokenResiduals(7, X.astype(np.float16), tok.offsets)
    groups = [str(i) for i in range(120)]
    train, test = list(range(0, 80)), list(range(80, 120))
    last = fit_dense(tok, y, groups, train, 7, rows="last")
    end = reading_scores(token_logits(tok, last.w, last.b), tok, test, Reading(1, "max", "response_end"))
    assert auroc(end, y[test]) > 0.95
    mean = fit_dense(tok, y, groups, train, 7, rows="mean")
    diluted = reading_scores(token_logits(tok, mean.w, mean.b), tok, test, Reading(4096, "mean", "response_end"))
    assert auroc(diluted, y[test]) < auroc(end, y[test])
