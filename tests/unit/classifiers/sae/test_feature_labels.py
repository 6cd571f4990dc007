"""Automatic feature labels from the stored top-activating tokens (``features label``):
deterministic, no model run, a person's label is never overwritten, the command is
recorded in the pack manifest; the committed pack carries them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from classifiers.sae.features import AUTO_LABEL_SOURCE, auto_label, label_features
from monitor.cli import main

REPO = Path(__file__).resolve().parents[4]
PACK = REPO / "classifiers" / "packs" / "smollm2-135m-instruct"


def ctx(token: str, activation: float = 1.0) -> dict:
    return {"activation": activation, "token": token, "text": f"x«{token}»y"}


def test_auto_label_most_frequent_tokens_first_ties_by_activation_order() -> None:
    entry = {"top_contexts": [ctx(" arg", 5), ctx("args", 4), ctx(" arg", 3), ctx("uid", 2), ctx("x", 1)]}
    assert auto_label(entry) == "tokens: arg | args | uid"
    assert auto_label(entry) == auto_label(json.loads(json.dumps(entry)))


def test_auto_label_spells_out_whitespace_and_is_empty_without_contexts() -> None:
    assert auto_label({"top_contexts": [ctx("\n"), ctx("  "), ctx("\n")]}) == "tokens: \\n | ␣␣"
    assert auto_label({"top_contexts": []}) == ""
    assert auto_label({}) == ""


def test_label_features_keeps_person_labels_and_redoes_automatic_ones() -> None:
    data = {"features": {
        "1": {"label": "", "top_contexts": [ctx(" cat")]},
        "2": {"label": "animals (checked by hand)", "top_contexts": [ctx(" dog")]},
        "3": {"label": "tokens: old", "label_source": AUTO_LABEL_SOURCE, "top_contexts": [ctx(" new")]},
        "4": {"label": "", "top_contexts": []},
    }}
    assert label_features(data) == (2, 1)
    f = data["features"]
    assert f["1"] == {"label": "tokens: cat", "label_source": AUTO_LABEL_SOURCE, "top_contexts": [ctx(" cat")]}
    assert f["2"]["label"] == "animals (checked by hand)" and "label_source" not in f["2"]
    assert f["3"]["label"] == "tokens: new"
    assert f["4"]["label"] == "" and "label_source" not in f["4"]


def test_features_label_cli_labels_records_command_and_shows_label(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "manifest.json").write_text(json.dumps({"hook_name": "blocks.3.hook_resid_post", "commands": ["a"]}))
    (pack / "features.json").write_text(json.dumps({"n_tokens": 10, "features": {
        "5": {"density": 0.1, "label": "", "top_contexts": [ctx(" cat", 2.0)]}}}))
    for _ in range(2):  # idempotent: the command is recorded once
        assert main(["features", "label", "--pack", str(pack)]) == 0
    assert "1 automatic labels, 0 person labels kept" in capsys.readouterr().out
    feats = json.loads((pack / "features.json").read_text())["features"]
    assert feats["5"]["label"] == "tokens: cat"
    manifest = json.loads((pack / "manifest.json").read_text())
    assert manifest["commands"] == ["a", f"saeguard features label --pack {pack}"]
    assert main(["features", "show", "5", "--pack", str(pack)]) == 0
    assert "label: tokens: cat" in capsys.readouterr().out


def test_committed_pack_features_carry_their_automatic_labels() -> None:
    data = json.loads((PACK / "features.json").read_text())
    feats = data["features"]
    with_contexts = [e for e in feats.values() if e.get("top_contexts")]
    assert with_contexts and all(e["label"] for e in with_contexts)
    auto = [e for e in feats.values() if e.get("label_source") == AUTO_LABEL_SOURCE]
    assert all(e["label"] == auto_label(e) for e in auto)
    manifest = json.loads((PACK / "manifest.json").read_text())
    assert "saeguard features label --pack classifiers/packs/smollm2-135m-instruct" in manifest["commands"]
    probes = json.loads((PACK / "probes" / "probes.json").read_text())
    for probe in probes["probes"].values():
        for item in probe["top_feature_evidence"]:
            assert item["label"] == feats[str(item["id"])]["label"]
