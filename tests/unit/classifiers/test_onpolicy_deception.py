"""The behaviour check of the on-policy deception experiment: does an answer state the truth?"""

from __future__ import annotations

from ops.research.probes.onpolicy_deception import contains_truth


def test_the_honest_answer_counts_only_as_whole_words_in_order() -> None:
    assert contains_truth("Louis XVII of France died in Paris.", "Paris")
    assert contains_truth("It is the LARYNX, also called the voice box", "larynx")
    assert contains_truth("The answer is New  York City", "New York")
    assert not contains_truth("He died in Parisville.", "Paris")
    assert not contains_truth("York, New England", "New York")


def test_an_empty_honest_answer_never_matches() -> None:
    assert not contains_truth("anything at all", "  ")
