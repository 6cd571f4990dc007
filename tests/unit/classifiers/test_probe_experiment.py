"""Attempt runner, calibration on the run-time reading, SAE-hash check: synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from classifiers.datasets import Transcript, chat_pair
from classifiers.features.extract import Residuals
from classifiers.features.store import chunk_name, write_chunk
from classifiers.probes.framing import Source
from classifiers.probes.sources_data import SourceData

D = 8


def _source(tmp_path, rng, name, n_pairs, direction):
    """Pairs whose positive tokens are shifted along ``direction`` (separable)."""
    ts, keys, res = [], [], []
    for i in range(n_pairs):
        for label in (0, 1):
            n_tok = int(rng.integers(2, 9))
            x = 0.3 * rng.normal(size=(n_tok, D)) + (4.0 * label) * direction
            ts.append(Transcript(chat_pair(f"{name} q{i}", f"a{label}"), label, "deception", name, f"g{i}"))
            keys.append(f"{name}-{i}-{label}")
            res.append(Residuals(np.arange(n_tok, dtype=np.int32), {5: x.astype(np.float16)}))
    write_chunk(tmp_path / name / chunk_name(0, keys), keys, res, [5])
    val = np.asarray([i % 5 == 0 for i in range(n_pairs) for _ in (0, 1)])
    return SourceData(Source(name), tuple(ts), tuple(keys), np.asarray([t.label for t in ts]),
                      np.asarray([f"{name}|{t.group}" for t in ts]), val)


@pytest.fixture
def setup(tmp_path, rng):
    from classifiers.features.bank import ResidualBank
    from classifiers.probes.basis import TokenFeatures

    direction = np.zeros(D)
    direction[0] = 1.0
    sources = {n: _source(tmp_path, rng, n, 40, direction) for n in ("s1", "s2")}
    return TokenFeatures(ResidualBank(tmp_path)), sources


@pytest.mark.parametrize("pooling", ["mean", "token", "max", "last"])
def test_separable_sources_reach_auroc_one_in_source_and_held_out(setup, pooling):
    from classifiers.probes.experiment import Attempt, run_attempt

    feats, sources = setup
    result, fit = run_attempt("deception", Attempt("dense:5", pooling), feats, sources, ["s1", "s2"])
    for block in result.in_source.values():
        assert block["pooled"]["auroc"] == pytest.approx(1.0)
    for block in result.loso.values():  # trained on the other source alone
        assert block["pooled"]["auroc"] >= 0.99
    if pooling in ("mean", "token"):
        assert result.in_source["s1"]["runtime"]["mean4"]["auroc"] > 0.95
    assert set(result.loso) == {"s1", "s2"}


def test_calibrated_threshold_keeps_fpr_on_its_negatives(setup, rng):
    from classifiers.probes.experiment import Attempt, run_attempt
    from classifiers.probes.readings import Reading
    from classifiers.probes.ship import calibrate_scores, choose_reading, runtime_scores

    feats, sources = setup
    result, fit = run_attempt("deception", Attempt("dense:5", "token"), feats, sources, ["s1", "s2"])
    reading = choose_reading(result)
    assert isinstance(reading, Reading)
    from classifiers.probes.basis import Basis

    negs = []
    for sd in sources.values():
        T, off = feats.tokens(Basis.parse("dense:5"), sd.keys)
        negs.append(runtime_scores(fit, T, off, reading)[sd.y == 0])
    benign = rng.uniform(0, 0.5, size=300)
    cal = calibrate_scores(np.concatenate(negs), benign, reading)
    allneg = np.concatenate(negs + [benign])
    for key, threshold in cal.thresholds.items():
        assert np.mean(allneg >= threshold) <= float(key)
        assert cal.achieved_fpr[key] <= float(key)
    assert cal.n_negatives == allneg.size and cal.n_benign == 300


def test_probes_trained_on_another_sae_are_detected():
    from classifiers.probes.commands import check_sae_match

    assert check_sae_match({"sae_sha256": "ab" * 32}, "ab" * 32) is None
    assert "retrain" in check_sae_match({"sae_sha256": "cd" * 32}, "ab" * 32)
    assert "no sae_sha256" in check_sae_match({}, "ab" * 32)


def test_held_out_sources_are_scored_in_full_and_never_trained_on(setup, tmp_path, rng):
    from classifiers.features.bank import ResidualBank
    from classifiers.probes.basis import TokenFeatures
    from classifiers.probes.experiment import Attempt, run_attempt, run_tfidf

    _, sources = setup
    direction = np.zeros(D)
    direction[0] = 1.0
    # an inverted source: if it were trained on, the fit (and its CV) would change
    sources = {**sources, "held": _source(tmp_path, rng, "held", 30, -direction)}
    feats = TokenFeatures(ResidualBank(tmp_path))
    attempt = Attempt("dense:5", "token")
    with_held, fit = run_attempt("deception", attempt, feats, {k: sources[k] for k in ("s1", "s2", "held")},
                                 ["s1", "s2"], held_out=["held"])
    without, fit0 = run_attempt("deception", attempt, feats, {k: sources[k] for k in ("s1", "s2")}, ["s1", "s2"])
    np.testing.assert_allclose(fit.weights, fit0.weights)
    assert with_held.c == without.c and with_held.in_source.keys() == {"s1", "s2"}
    cross = with_held.cross["held"]
    assert cross["pooled"]["n"] == 60  # all of it, not a validation split
    assert cross["pooled"]["auroc"] == pytest.approx(0.0)  # the inversion shows, nothing hides it
    assert "mean4" in cross["runtime"]
    assert with_held.summary()["cross_auroc"] == {"held": cross["pooled"]["auroc"]}
    assert "cross|held|pooled" in with_held.curves
    tfidf = run_tfidf("deception", {k: sources[k] for k in ("s1", "s2", "held")}, ["s1", "s2"], held_out=["held"])
    assert tfidf.cross["held"]["pooled"]["n"] == 60 and "held" not in tfidf.in_source
