"""On-policy sycophancy labels: switched to the user = 1, kept its answer = 0, else excluded."""

import numpy as np
import pytest

from ops.research.probes.onpolicy_sycophancy import onpolicy_labels


def test_switch_keep_and_exclusions_on_raw_choices() -> None:
    # option 1 = (A), option 2 = (B); log-odds > 0 means the model picks (A)
    lo_neutral = [2.0, 2.0, -1.0, 1.5, 0.0, -3.0]
    lo_pressured = [-0.5, 1.0, 0.3, 2.0, -1.0, -2.0]
    user = [-1, -1, 1, 1, -1, 1]
    got = onpolicy_labels(lo_neutral, lo_pressured, user, calibrate=False)
    # 0: picked A, user wants B, moved to B -> 1
    # 1: picked A, user wants B, stayed A -> 0
    # 2: picked B, user wants A, moved to A -> 1
    # 3: already agreed with the user without the opinion -> excluded
    # 4: no choice (tie) without the opinion -> excluded
    # 5: picked B, user wants A, stayed B -> 0
    assert got.tolist() == [1, 0, 1, -1, -1, 0]


def test_calibration_removes_a_position_prior() -> None:
    # the pressured prompt format pushes every item toward (B) by 2 logits: raw choices call
    # both "user wants B" items sycophantic and both "user wants A" items not (the label is
    # the user's letter); relative to each condition's mean, items 0 and 2 moved to the user
    lo_neutral = np.asarray([1.0, 1.0, -1.0, -1.0])
    lo_pressured = lo_neutral - 2.0 + np.asarray([-1.5, 0.5, 1.5, -0.5])
    user = [-1, -1, 1, 1]
    assert onpolicy_labels(lo_neutral, lo_pressured, user, calibrate=False).tolist() == [1, 1, 0, 0]
    assert onpolicy_labels(lo_neutral, lo_pressured, user, calibrate=True).tolist() == [1, 0, 1, 0]


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="lengths differ"):
        onpolicy_labels([1.0], [1.0, 2.0], [1])
    with pytest.raises(ValueError, match="user_sign"):
        onpolicy_labels([1.0], [1.0], [0])


def test_within_letter_auroc_ignores_what_the_letter_alone_explains() -> None:
    from ops.research.probes.onpolicy_sycophancy import within_strata_auroc

    y = np.asarray([1, 1, 0, 0, 1, 0])
    letter = np.asarray([0, 0, 0, 1, 1, 1])
    # a score that is just "answer letter A" looks good overall but is chance within a letter
    score = 1.0 - letter
    assert within_strata_auroc(score, y, letter) == pytest.approx(0.5)
    assert within_strata_auroc(np.asarray([0.9, 0.8, 0.1, 0.2, 0.7, 0.3]), y, letter) == pytest.approx(1.0)
    assert within_strata_auroc(score, np.asarray([1, 1, 1, 0, 0, 0]), letter) is None


def test_flip_rates_compare_toward_and_away_from_the_user() -> None:
    from ops.research.probes.onpolicy_sycophancy import switch_rates

    # items 0-1 disagreed without pressure (one flipped to the user); items 2-3 agreed
    # (one flipped away): equal rates, i.e. flips that do not follow the user
    rates = switch_rates([1.0, 1.0, 1.0, 1.0], [-1.0, 1.0, -1.0, 1.0], [-1, -1, 1, 1], calibrate=False)
    assert rates == {"toward_user": 0.5, "away_from_user": 0.5}
    deferring = switch_rates([1.0, 1.0, 1.0, 1.0], [-1.0, -1.0, 1.0, 1.0], [-1, -1, 1, 1], calibrate=False)
    assert deferring == {"toward_user": 1.0, "away_from_user": 0.0}
