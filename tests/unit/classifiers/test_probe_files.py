"""probes.safetensors/probes.json round trip, top features, external files, TF-IDF baseline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from safetensors.numpy import load_file

from classifiers.datasets import Transcript, chat_pair
from classifiers.probes.baselines import train_tfidf_on_transcripts
from classifiers.probes.external import ExternalDataError, by_concept, read_external, report
from classifiers.probes.io import (
    ProbeFileError,
    ProbeRecord,
    load_probes,
    save_probes,
    top_features,
    typical_activation,
)


def _records(rng, d=16):
    return [
        ProbeRecord(
            name="deception",
            concept="deception",
            pooling="max",
            weights=rng.normal(size=d),
            bias=-0.25,
            thresholds={"0.01": 0.83, "0.05": 0.61},
            top_features=[(3, 0.9), (1, 0.2)],
            metrics={"val": {"auroc": np.float64(0.91), "n": np.int64(40)}, "bad": float("nan")},
            training={"datasets": ["deception_lie_detector_pairs"], "c": 0.1},
            extra={"layer": 15},
        ),
        ProbeRecord(
            name="bias",
            concept="bias",
            pooling="mean",
            weights=rng.normal(size=d),
            bias=0.5,
        ),
    ]


def test_probes_round_trip(tmp_path, rng):
    records = _records(rng)
    json_path, st_path = save_probes(
        tmp_path / "probes", records, "blocks.15.hook_resid_post", extra={"feature_basis": "sae"}
    )
    doc = json.loads(json_path.read_text())
    assert doc["schema_version"] == 1 and doc["hook_name"] == "blocks.15.hook_resid_post"
    assert list(doc["probes"]) == ["deception", "bias"]
    assert doc["probes"]["deception"]["thresholds"] == {"0.01": 0.83, "0.05": 0.61}
    assert doc["probes"]["deception"]["top_features"] == [[3, 0.9], [1, 0.2]]
    assert doc["probes"]["deception"]["metrics"]["bad"] is None
    tensors = load_file(str(st_path))
    assert tensors["W"].shape == (16, 2) and tensors["W"].dtype == np.float32
    assert tensors["b"].shape == (2,)

    loaded = load_probes(tmp_path / "probes")
    assert [p.name for p in loaded.probes] == ["deception", "bias"]
    np.testing.assert_allclose(loaded.probes[0].weights, records[0].weights.astype(np.float32))
    assert loaded.probes[1].bias == 0.5
    assert loaded.probes[0].extra == {"layer": 15}
    assert loaded.extra == {"feature_basis": "sae"}
    assert loaded.probes[0].metrics["val"] == {"auroc": 0.91, "n": 40}
    # saving what was loaded gives the same files
    save_probes(tmp_path / "again", loaded.probes, loaded.hook_name, extra=loaded.extra)
    assert (tmp_path / "again" / "probes.json").read_text() == json_path.read_text()
    assert not list((tmp_path / "probes").glob("*.tmp"))


def test_probe_files_are_cross_checked(tmp_path, rng):
    records = _records(rng)
    with pytest.raises(ProbeFileError, match="duplicate"):
        save_probes(tmp_path, [records[0], records[0]], "h")
    odd = ProbeRecord("x", "bias", "max", np.zeros(3), 0.0)
    with pytest.raises(ProbeFileError, match="dimensions"):
        save_probes(tmp_path, [records[0], odd], "h")
    with pytest.raises(ProbeFileError, match="missing"):
        load_probes(tmp_path / "nothing")
    save_probes(tmp_path, records, "h")
    doc = json.loads((tmp_path / "probes.json").read_text())
    del doc["probes"]["bias"]
    (tmp_path / "probes.json").write_text(json.dumps(doc))
    with pytest.raises(ProbeFileError, match="do not match 1 probes"):
        load_probes(tmp_path)


def test_top_features_rank_weight_times_typical_activation():
    X = sp.csr_matrix(np.array([[0, 2.0, 1.0, 0], [0, 4.0, 0.0, 1.0], [5.0, 0, 0, 0]]))
    typical = typical_activation(X, [1, 1, 0])
    np.testing.assert_allclose(typical, [0.0, 3.0, 0.5, 0.5])
    weights = np.array([10.0, 0.5, 2.0, -1.0])
    # contributions: 0, 1.5, 1.0, -0.5 -> positive ones, descending
    assert top_features(weights, typical, k=3) == [(1, 1.5), (2, 1.0)]
    assert top_features(weights, typical, k=4, positive_only=False)[-1] == (3, -0.5)


def _write(tmp_path, lines):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = json.dumps(
    {
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
        "label": 1,
    }
)


def test_external_file_reads_valid_lines(tmp_path):
    second = json.loads(GOOD) | {"label": 0, "concept": "bias", "id": 7}
    examples = read_external(_write(tmp_path, [GOOD, "", json.dumps(second)]))
    assert [(e.label, e.concept, e.line, e.id) for e in examples] == [
        (1, None, 1, None),
        (0, "bias", 3, "7"),
    ]
    assert examples[0].chat()[-1] == {"role": "assistant", "content": "a"}
    assert by_concept(examples, default_concept="bias") == {"bias": examples}
    with pytest.raises(ExternalDataError, match="lines 1 name no concept"):
        by_concept(examples)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "2: invalid JSON"),
        (json.dumps({"messages": [], "label": 1}), '2: "messages" must be a non-empty list'),
        (json.dumps({"messages": [{"role": "assistant", "content": "a"}]}), '2: missing "label"'),
        (
            json.dumps({"messages": [{"role": "user", "content": "q"}], "label": 1}),
            "2: the last message must have role assistant",
        ),
        (
            json.dumps({"messages": [{"role": "bot", "content": "a"}], "label": 1}),
            "2: messages[0].role must be one of",
        ),
        (
            json.dumps({"messages": [{"role": "assistant", "content": "a"}], "label": True}),
            '2: "label" must be the integer 0 or 1',
        ),
        (
            json.dumps({"messages": [{"role": "assistant", "content": "a"}], "label": 2}),
            '2: "label" must be the integer 0 or 1',
        ),
        (
            json.dumps(
                {
                    "messages": [{"role": "assistant", "content": "a"}],
                    "label": 1,
                    "concept": "toxicity",
                }
            ),
            '2: "concept" must be one of',
        ),
        (
            json.dumps({"messages": [{"role": "assistant", "content": "a"}], "lable": 1}),
            "2: unknown key(s) ['lable'] (did you mean 'label'?)",
        ),
        (
            json.dumps({"messages": [{"role": "assistant", "content": "a"}], "label": 1, "concpet": "bias"}),
            "2: unknown key(s) ['concpet'] (did you mean 'concept'?)",
        ),
        (
            json.dumps({"messages": [{"role": "assistant", "contnet": "a"}], "label": 1}),
            "2: messages[0]: unknown key(s) ['contnet'] (did you mean 'content'?)",
        ),
        (
            json.dumps({"messages": [{"role": "assistant"}], "label": 1}),
            "2: messages[0] must have the keys role and content",
        ),
        ("[1, 2]", "2: expected a JSON object"),
    ],
)
def test_external_file_errors_name_file_and_line(tmp_path, line, message):
    path = _write(tmp_path, [GOOD, line])
    with pytest.raises(ExternalDataError) as err:
        read_external(path)
    assert f"{path}:{message}" in str(err.value)


def test_external_file_empty_or_missing(tmp_path):
    with pytest.raises(ExternalDataError, match="no examples"):
        read_external(_write(tmp_path, [""]))
    with pytest.raises(ExternalDataError, match="file not found"):
        read_external(tmp_path / "absent.jsonl")


def test_report_has_the_cli_keys():
    out = report([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    assert out == {"n": 4, "auroc": 1.0, "auprc": 1.0, "tpr_at_1pct_fpr": 1.0, "auroc_ci95": [1.0, 1.0]}
    assert report([0.1, 0.2], [1, 1]) == {
        "n": 2,
        "auroc": None,
        "auprc": None,
        "tpr_at_1pct_fpr": None,
        "auroc_ci95": None,
    }


def test_auroc_interval_holds_the_estimate_and_narrows_with_more_data():
    from classifiers.probes.metrics import auroc, auroc_interval

    rng = np.random.default_rng(3)
    widths = []
    for n in (40, 400, 4000):
        y = np.repeat([1, 0], n // 2)
        s = rng.normal(size=n) + 0.6 * y
        lo, hi = auroc_interval(s, y)
        assert lo < auroc(s, y) < hi
        widths.append(hi - lo)
    assert widths[0] > 2 * widths[1] > 4 * widths[2]
    # a chance-level probe on 200 items: the interval spans 0.5 and is about +-0.08 wide
    y = np.repeat([1, 0], 100)
    lo, hi = auroc_interval(rng.normal(size=200), y)
    assert lo < 0.5 < hi and 0.1 < hi - lo < 0.25
    assert auroc_interval(s, y := np.repeat([1, 0], 2000)) == auroc_interval(s, y)  # deterministic


def test_tfidf_baseline_learns_a_word_and_scores_transcripts():
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    data = []
    for i in range(40):
        filler = f"{words[i % 6]} {words[(i * 5) % 6]}"
        for label, marker in ((1, "falsehood"), (0, "fact")):
            data.append(
                Transcript(
                    chat_pair("q?", f"{filler} {marker}"), label, "deception", "toy", f"g{i}"
                )
            )
    baseline = train_tfidf_on_transcripts(data, cs=(1.0, 10.0), n_folds=4)
    assert baseline.cv_auroc == 1.0
    scores = baseline.score_transcripts(data[:2])
    assert scores[0] > 0.5 > scores[1]


def test_external_file_metadata_keys_are_ignored_with_one_warning(tmp_path, capsys):
    line = {
        "messages": [{"role": "user", "content": "q", "name": "alice"},
                     {"role": "assistant", "content": "a"}],
        "label": 0, "source": "my-eval", "meta": {"split": "test"},
    }
    examples = read_external(_write(tmp_path, [GOOD, json.dumps(line)]))
    assert [e.label for e in examples] == [1, 0]
    assert examples[1].chat() == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    logged = capsys.readouterr()
    text = logged.out + logged.err
    assert "external_keys_ignored" in text
    assert "messages[].name" in text and "source" in text and "meta" in text


def test_external_file_that_is_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes((GOOD + "\n").encode() + '{"messages": [], "label": 1, "note": "caf\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(ExternalDataError, match=r"latin1.jsonl:2: not UTF-8 text"):
        read_external(path)


def test_external_file_with_a_byte_order_mark_reads(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (GOOD + "\n").encode())
    assert [e.label for e in read_external(path)] == [1]
