"""Pure pieces of the estimator study: pair centring and source-balanced mass-mean."""

from __future__ import annotations

import numpy as np

from classifiers.probes.metrics import auroc
from ops.research.probes.estimator_study import centre_by_group, directions, mass_mean


def test_centring_removes_each_groups_mean_and_reports_group_sizes() -> None:
    X = np.array([[1.0, 10.0], [3.0, 20.0], [5.0, 0.0]])
    Xc, size = centre_by_group(X, np.array(["a", "a", "b"]))
    assert np.allclose(Xc, [[-1.0, -5.0], [1.0, 5.0], [0.0, 0.0]])
    assert size.tolist() == [2, 2, 1]


def test_mass_mean_weighs_sources_equally_whatever_their_size() -> None:
    big = (np.array([[1.0, 0.0]] * 50 + [[0.0, 0.0]] * 50), np.array([1] * 50 + [0] * 50), np.arange(100))
    small = (np.array([[0.0, 1.0], [0.0, 0.0]]), np.array([1, 0]), np.arange(2))
    assert np.allclose(mass_mean([big, small]), [0.5, 0.5])


def test_every_estimator_finds_a_within_pair_direction_under_a_large_between_pair_nuisance() -> None:
    rng = np.random.default_rng(0)
    parts = []
    for _ in range(2):  # two sources
        n_pairs = 60
        offset = rng.normal(0, 20, size=(n_pairs, 1)) * np.array([[1.0, 0.0, 1.0]])  # pair content
        X = np.repeat(offset, 2, axis=0) + rng.normal(0, 0.3, size=(2 * n_pairs, 3))
        y = np.tile([1, 0], n_pairs)
        X[:, 1] += np.where(y == 1, 1.0, -1.0)  # the concept
        parts.append((X, y, np.repeat(np.arange(n_pairs), 2)))
    held_X, held_y, _ = parts[1]
    for name, w in directions(parts[:1] + parts[:1]).items():
        assert abs(w[1]) > abs(w[0]) and abs(w[1]) > abs(w[2]), name
        assert auroc(held_X @ w, held_y) > 0.9, name


def test_identical_pairs_are_contrastive_groups_whose_members_read_the_same() -> None:
    from classifiers.datasets import Transcript, chat_pair
    from classifiers.probes.sources_data import identical_pairs

    def t(group: str, label: int) -> Transcript:
        return Transcript(chat_pair("q", "a"), label, "unsafe_code", "code_sven", group, {})

    ts = [t("same", 1), t("same", 0), t("differs", 1), t("differs", 0), t("one-label", 1), t("one-label", 1)]
    seqs = [b"x", b"x", b"y", b"z", b"w", b"w"]
    assert identical_pairs(ts, seqs) == {0, 1}
