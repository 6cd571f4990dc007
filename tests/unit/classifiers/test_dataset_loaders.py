"""Loaders over the real ../shared/datasets: counts, balance, pairing and template uniformity."""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path

import pytest

from classifiers.datasets import (
    Transcript,
    dataset_names,
    get_dataset,
    load_scenarios,
    load_transcripts,
    split,
)

# name -> (transcripts, positives, groups), measured on the shared snapshot.
EXPECTED = {
    "deception_lie_detector_pairs": (7334, 3667, 3662),
    "deception_repe_facts": (612, 306, 597),
    "deception_truthfulqa": (1616, 808, 808),
    "sycophancy_anthropic_opinion": (2000, 1000, 135),
    "code_sven": (1598, 799, 799),
    "code_safecoder_secnew": (928, 464, 464),
    "bias_bbq": (11956, 5978, 150),
    "bias_bbq_stereo_vs_anti": (11956, 5978, 150),
    "bias_winobias": (3168, 1584, 1584),
}
# Datasets whose groups are contrastive pairs/questions with both labels inside.
PAIRED = [n for n in EXPECTED if n != "deception_repe_facts"]


@cache
def _load(name: str, root: str) -> tuple[Transcript, ...]:
    return tuple(load_transcripts(name, Path(root)))


@pytest.fixture
def load(datasets_root):
    return lambda name: _load(name, str(datasets_root))


def test_every_shared_set_is_registered():
    names = set(dataset_names())
    assert set(EXPECTED) | {"sycophancy_freeform_pressure", "sycophancy_pressure_replies"} == names
    assert dataset_names(role="cross_source") == (
        "deception_truthfulqa",
        "sycophancy_pressure_replies",
        "code_safecoder_secnew",
        "bias_winobias",
    )
    assert dataset_names(labelled=False) == ("sycophancy_freeform_pressure",)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_counts_and_balance(load, name):
    data = load(name)
    n, positives, groups = EXPECTED[name]
    labels = Counter(t.label for t in data)
    assert len(data) == n
    assert labels[1] == positives and labels[0] == n - positives
    assert len({t.group for t in data}) == groups
    spec = get_dataset(name)
    assert all(t.source == name and t.concept == spec.concept for t in data)
    assert all([m["role"] for m in t.messages] == ["user", "assistant"] for t in data)


@pytest.mark.parametrize("name", PAIRED)
def test_pairs_share_the_user_turn_and_hold_both_labels(load, name):
    by_group: dict[str, list[Transcript]] = defaultdict(list)
    for t in load(name):
        by_group[t.group].append(t)
    for members in by_group.values():
        assert {t.label for t in members} == {0, 1}
    # consecutive records are the two members of one pair: same question, other label
    data = load(name)
    for a, b in zip(data[::2], data[1::2], strict=True):
        assert a.group == b.group and a.user_text == b.user_text and a.label != b.label


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_assistant_length_does_not_give_the_label_away(load, name):
    data = load(name)
    pos = statistics.median(len(t.assistant_text) for t in data if t.label == 1)
    neg = statistics.median(len(t.assistant_text) for t in data if t.label == 0)
    # bias_bbq ("Answer: The grandfather." vs "Answer: Unknown.") is the loosest: 1.18.
    assert 0.8 <= pos / neg <= 1.25, (name, pos, neg)


def test_lie_pairs_are_normalised_per_family(load):
    data = load("deception_lie_detector_pairs")
    honest = [t for t in data if t.label == 0]
    lies = [t for t in data if t.label == 1]
    # upstream the honest medians are ~7 characters and the lies ~53
    for family in ("qa", "translation", "math", "verdict"):
        h = [len(t.assistant_text) for t in honest if t.meta["family"] == family]
        lie = [len(t.assistant_text) for t in lies if t.meta["family"] == family]
        assert 0.8 <= statistics.median(lie) / statistics.median(h) <= 1.25, family
    # every assertion is one sentence with terminal punctuation, no substitution debris
    assert all(t.assistant_text[-1] in ".!?'\"" for t in data)
    assert not [t for t in data if re.search(r"\b(the|a|an) (the|a|an)\b", t.assistant_text, re.I)]


def test_identical_code_pairs_are_dropped(load):
    sven = load("code_sven")
    dropped = {
        "sven-train-cwe125-30",
        "sven-train-cwe416-20",
        "sven-train-cwe416-22",
        "sven-train-cwe416-26",
    }
    assert not dropped & {t.group for t in sven}
    for name in ("code_sven", "code_safecoder_secnew"):
        data = load(name)
        for a, b in zip(data[::2], data[1::2], strict=True):
            assert a.assistant_text.strip() != b.assistant_text.strip()


@pytest.mark.parametrize("name", ["code_sven", "code_safecoder_secnew"])
def test_code_prompts_do_not_leak_the_label(load, name):
    leak = re.compile(r"vulnerab|\bcwe\b|cwe-\d|\bfixed\b|\bpatched\b", re.I)
    data = load(name)
    assert not [t.user_text for t in data if leak.search(t.user_text)]
    assert all(
        t.assistant_text.startswith("```") and t.assistant_text.endswith("```") for t in data
    )
    # changed spans point inside the code block, on the right side of the fix
    with_spans = [t for t in data if t.meta["changed_spans"]]
    assert len(with_spans) > len(data) // 2
    for t in with_spans:
        for start, end in t.meta["changed_spans"]:
            assert 0 < start < end <= len(t.assistant_text) - 4


def test_bbq_framings_share_the_positive_and_differ_in_the_negative(load):
    unknown = load("bias_bbq")
    stereo = load("bias_bbq_stereo_vs_anti")
    assert [t.assistant_text for t in unknown if t.label] == [
        t.assistant_text for t in stereo if t.label
    ]
    negatives = Counter(t.assistant_text for t in unknown if t.label == 0)
    assert "Answer: Unknown." in negatives
    assert not {t.assistant_text for t in stereo if t.label == 0} & set(negatives)


def test_winobias_markup_is_stripped(load):
    data = load("bias_winobias")
    assert not [t for t in data if re.search(r"[\[\]]|^\d", t.assistant_text)]
    assert not [t for t in data if re.search(r"\bthe the\b", t.assistant_text, re.I)]


def test_sycophancy_positive_is_the_choice_the_user_wants(load):
    first = load("sycophancy_anthropic_opinion")[0]
    assert first.label == 1 and first.assistant_text == "My answer is (B) Disagree."
    assert "Answer:" not in first.user_text and "I strongly believe" in first.user_text


def test_freeform_pressure_is_unlabelled_scenarios(datasets_root):
    with pytest.raises(ValueError, match="unlabelled"):
        load_transcripts("sycophancy_freeform_pressure", datasets_root)
    scenarios = load_scenarios("sycophancy_freeform_pressure", datasets_root)
    assert len(scenarios) == 150
    assert all(not s.labelled and len(s.user_turns) == 3 for s in scenarios)
    assert Counter(s.domain for s in scenarios)["factual"] == 40


def test_pressure_replies_pair_the_sets_phrases_with_its_assessment(load, datasets_root):
    data = load("sycophancy_pressure_replies")
    scenarios = {s.prompt_id: s for s in load_scenarios("sycophancy_freeform_pressure", datasets_root)}
    # 135 of 150 scenarios keep an honest reply of >= 60 characters; 2 framings x 2 replies each
    assert len(data) == 540 and sum(t.label for t in data) == 270
    assert len({t.group for t in data}) == 135
    assert Counter(t.meta["domain"] for t in data) == {"claim": 270, "pushback": 270}
    for a, b in zip(data[::2], data[1::2], strict=True):
        assert (a.label, b.label) == (1, 0) and a.messages[:-1] == b.messages[:-1]
        sc = scenarios[a.group]
        assert a.messages[0]["content"] == sc.user_turns[0]
        assert all(p.strip().rstrip(".!?") in a.assistant_text for p in sc.sycophancy_indicators)
        assert b.assistant_text.split(". ")[0] in sc.ground_truth
        if a.meta["domain"] == "pushback":
            # the assistant's first reply was the honest one; the user then pushed back
            assert [m["role"] for m in a.messages] == ["user", "assistant", "user", "assistant"]
            assert a.messages[1]["content"] == b.assistant_text and a.messages[2]["content"] == sc.user_turns[1]
    pos = statistics.median(len(t.assistant_text) for t in data if t.label == 1)
    neg = statistics.median(len(t.assistant_text) for t in data if t.label == 0)
    assert 0.8 <= pos / neg <= 1.25
    assert not any(re.search(r"\b(model|response) should\b|^Should\b", t.assistant_text) for t in data if t.label == 0)


def test_group_split_never_separates_a_pair(load):
    data = load("deception_lie_detector_pairs") + load("bias_bbq")
    parts = split(data, val_fraction=0.2, seed=7)
    assert len(parts.train) + len(parts.val) == len(data)
    assert not {t.group for t in parts.train} & {t.group for t in parts.val}
    share = len(parts.val) / len(data)
    assert 0.1 < share < 0.3
    assert split(data, 0.2, 7) == parts  # deterministic
