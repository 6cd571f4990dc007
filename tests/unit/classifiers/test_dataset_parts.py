"""Dataset pieces that need no data files: records, registry, split, normalisation."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifiers.datasets import (
    DatasetError,
    Transcript,
    chat_pair,
    fingerprint,
    load_transcripts,
    register_dataset,
    split,
)
from classifiers.datasets.bias_winobias import clean_sentence
from classifiers.datasets.code_pairs import prompt_for
from classifiers.datasets.files import REPO_ROOT, resolve_datasets_root
from classifiers.datasets.lie_normalise import clean_question, normalise_pair


def _t(group: str, label: int, text: str = "x", source: str = "toy") -> Transcript:
    return Transcript(chat_pair("q?", text), label, "deception", source, group)


def test_transcript_rejects_malformed_records():
    with pytest.raises(ValueError, match="label"):
        _t("g", 2)
    with pytest.raises(ValueError, match="concept"):
        Transcript(chat_pair("q", "a"), 1, "toxicity", "toy", "g")
    with pytest.raises(ValueError, match="last message"):
        Transcript(
            ({"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}),
            1,
            "bias",
            "toy",
            "g",
        )
    with pytest.raises(ValueError, match="empty"):
        _t("g", 1, text="  ")


def test_transcript_uid_is_stable_and_content_sensitive():
    assert _t("g", 1, "a").uid == _t("g", 1, "a").uid
    assert _t("g", 1, "a").uid != _t("g", 1, "b").uid
    assert _t("g", 1).chat() == [
        {"role": "user", "content": "q?"},
        {"role": "assistant", "content": "x"},
    ]


def test_register_refuses_duplicates_and_unknown_concepts():
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("code_sven", lambda root: iter(()), concept="unsafe_code", role="train")
    with pytest.raises(ValueError, match="unknown concept"):
        register_dataset("new_set", lambda root: iter(()), concept="toxicity", role="train")


def test_split_keeps_groups_together_and_is_deterministic():
    data = [_t(f"g{i}", label) for i in range(500) for label in (0, 1)]
    parts = split(data, val_fraction=0.25, seed=3)
    train_groups = {t.group for t in parts.train}
    val_groups = {t.group for t in parts.val}
    assert not train_groups & val_groups
    assert len(train_groups) + len(val_groups) == 500
    assert 0.18 < len(val_groups) / 500 < 0.32
    assert split(data, 0.25, 3) == parts
    assert split(data, 0.25, 4) != parts
    # a group's side does not depend on the other data
    assert split(data[:100], 0.25, 3).val == tuple(t for t in parts.val if t in data[:100])
    assert split(data, 0.0, 3).val == () and split(data, 1.0, 3).train == ()


def test_datasets_root_resolution_never_uses_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    default = resolve_datasets_root(None)
    assert default == (REPO_ROOT.parent / "shared" / "datasets").resolve()
    assert resolve_datasets_root(None, "/data/sets") == Path("/data/sets")
    assert resolve_datasets_root("rel/sets", "/ignored") == REPO_ROOT / "rel" / "sets"


@pytest.mark.parametrize(
    ("source", "question", "honest", "lie", "want_honest", "want_lie"),
    [
        (
            "WikiData",
            "The country of citizenship of Jacques Rogge is?",
            "Belgium",
            "The country of citizenship of Jacques Rogge is the United States.",
            "The country of citizenship of Jacques Rogge is Belgium.",
            "The country of citizenship of Jacques Rogge is the United States.",
        ),
        (
            "Questions1000",
            "Where did Georges Ernest Boulanger take up work?",
            "Paris",
            "Georges Ernest Boulanger worked in London.",
            "Georges Ernest Boulanger worked in Paris.",
            "Georges Ernest Boulanger worked in London.",
        ),
        (
            "Sciq",
            "What kind of systems use fluid to transmit pressure?",
            "hydraulic systems",
            "Pneumatic systems use fluid to transmit pressure.",
            "Hydraulic systems use fluid to transmit pressure.",
            "Pneumatic systems use fluid to transmit pressure.",
        ),
        (
            "TatoebaFreToEng",
            "Translate the following to English: 'Elles vous méprisent.'",
            "They despise you.",
            "This translates to 'They admire you.'",
            "This translates to 'They despise you.'",
            "This translates to 'They admire you.'",
        ),
        (
            "Commonsense2",
            "A bird has 3 wings. Is that true or false?",
            "False",
            "True, a bird has 3 wings.",
            "False.",
            "True.",
        ),
        (
            "Sciq",
            "Most of the genes in the eukaryotic cell are found in what structure?",
            "the nucleus",
            "Most of the genes in the eukaryotic cell are found in the mitochondria.",
            "Most of the genes in the eukaryotic cell are found in the nucleus.",
            "Most of the genes in the eukaryotic cell are found in the mitochondria.",
        ),
        (
            "MathematicalProblems",
            "How many goldfish remained?",
            "10",
            "16 goldfish remained.",
            "10 goldfish remained.",
            "16 goldfish remained.",
        ),
    ],
)
def test_lie_pairs_become_one_sentence_form(source, question, honest, lie, want_honest, want_lie):
    pair = normalise_pair(source, question, honest, lie)
    assert pair is not None
    assert (pair.honest, pair.lie) == (want_honest, want_lie)


def test_lie_pairs_without_a_reliable_span_are_dropped():
    q = "Do placental mammals give birth to relatively small or large fetuses?"
    assert (
        normalise_pair("Sciq", q, "large", "Placental mammals give birth to small fetuses.") is None
    )
    assert normalise_pair("Commonsense2", "x?", "True", "True, it is.") is None  # not a lie
    assert clean_question("Do you learn?\n\nOptions:") == "Do you learn?"


def test_code_prompt_never_names_the_flaw():
    assert prompt_for("py", "build_board", None) == "Write a Python function named `build_board`."
    assert prompt_for("js", "(anonymous)", None) == "Write a JavaScript function."
    leaky = "Write a C function that fixes the CWE-787 overflow."
    assert prompt_for("c", "f", leaky) == "Write a C function named `f`."
    assert prompt_for("rb", "f", "Write a Ruby method to sort.") == "Write a Ruby method to sort."


def test_winobias_sentence_cleanup():
    marked = "The assistant notified the [the chief] about a problem and asked [him] to act."
    assert clean_sentence(marked) == (
        "The assistant notified the chief about a problem and asked him to act."
    )


def test_missing_dataset_files_name_the_path(tmp_path):
    with pytest.raises(DatasetError, match=str(tmp_path)):
        load_transcripts("code_sven", tmp_path)
    with pytest.raises(KeyError, match="unknown dataset 'nope'"):
        load_transcripts("nope", tmp_path)


def test_fingerprint_changes_with_content_and_order():
    a, b = _t("g1", 0), _t("g1", 1)
    assert fingerprint([a, b]) == fingerprint([_t("g1", 0), _t("g1", 1)])
    assert fingerprint([a, b]) != fingerprint([b, a])
