"""Dense probes: C by grouped CV, a planted direction recovered, the layer ensemble."""

from __future__ import annotations

import numpy as np

from classifiers.dense.probe import ensemble_logit, fit_probe
from classifiers.probes.metrics import auroc


def planted(n: int, d: int, seed: int, signal: float = 1.5):
    rng = np.random.default_rng(seed)
    direction = np.zeros(d)
    direction[3] = 1.0
    y = np.repeat([0, 1], n // 2)
    X = rng.normal(size=(n, d)) * 5.0 + 100.0  # an offset and a scale the probe must standardise away
    X += signal * np.outer(y - 0.5, direction) * 5.0
    groups = [f"g{i // 2}" for i in range(n)]
    return X, y, groups


def test_a_planted_direction_is_found_and_transfers_to_fresh_data():
    X, y, groups = planted(400, 20, 0)
    probe = fit_probe(X, y, groups, layer=5, pooling="mean")
    assert probe.C in (1e-3, 1e-2, 1e-1, 1.0) and probe.cv_auroc > 0.75
    X2, y2, _ = planted(400, 20, 1)
    assert auroc(probe.logit(X2), y2) > 0.75
    assert int(np.argmax(np.abs(probe.w))) == 3


def test_pure_noise_stays_near_chance_out_of_sample():
    X, y, groups = planted(300, 20, 2, signal=0.0)
    probe = fit_probe(X, y, groups, layer=1, pooling="mean")
    X2, y2, _ = planted(300, 20, 3, signal=0.0)
    assert abs(auroc(probe.logit(X2), y2) - 0.5) < 0.12


def test_the_ensemble_averages_standardised_logits_of_its_layers():
    X, y, groups = planted(200, 10, 4)
    a = fit_probe(X, y, groups, layer=1, pooling="mean")
    b = fit_probe(X * 100.0, y, groups, layer=2, pooling="mean")  # same signal, another scale
    ens = ensemble_logit([a, b], {1: X, 2: X * 100.0})
    np.testing.assert_allclose(ens, (a.logit(X) / a.scale + b.logit(X * 100.0) / b.scale) / 2)
    assert auroc(ens, y) > 0.75
