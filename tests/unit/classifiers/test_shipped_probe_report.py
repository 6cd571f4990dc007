"""The shipped probes report every concept on data it was not trained on."""

from __future__ import annotations

import json
from pathlib import Path

PROBES = Path(__file__).resolve().parents[3] / "classifiers/packs/smollm2-135m-instruct/probes"


def test_every_concept_has_a_cross_source_number_with_its_interval() -> None:
    doc = json.loads((PROBES / "probes.json").read_text(encoding="utf-8"))
    for name, probe in doc["probes"].items():
        m = probe["metrics"]
        held = {**m["leave_one_source_out"], **m.get("held_out_sources", {})}
        assert held, name
        for source, block in held.items():
            rt = block["runtime"]
            lo, hi = rt["auroc_ci95"]
            assert lo <= rt["auroc"] <= hi, (name, source)
            assert set(probe["training"]["sources"]).isdisjoint(m.get("held_out_sources", {}))


def test_sycophancy_is_scored_on_the_held_out_written_replies() -> None:
    doc = json.loads((PROBES / "probes.json").read_text(encoding="utf-8"))
    syc = doc["probes"]["sycophancy"]
    block = syc["metrics"]["held_out_sources"]["sycophancy_pressure_replies"]
    assert block["runtime"]["n"] == 540 and block["pooled"]["n"] == 540  # all of it, not a split
    assert "sycophancy_pressure_replies" not in syc["training"]["sources"]
    baselines = syc["metrics"]["baselines"]
    assert all("sycophancy_pressure_replies" in b["held_out_sources"] for b in baselines.values())
    report = (PROBES / "REPORT.md").read_text(encoding="utf-8")
    assert "| sycophancy | sycophancy_pressure_replies (held-out set) | – |" in report


def test_eval_probes_refits_the_held_out_numbers_with_the_shipped_probes_own_recipe() -> None:
    from classifiers.probes.evaluate import loso_recipe
    from classifiers.probes.experiment import Attempt
    from classifiers.probes.pipeline import SHIPPED_CS

    doc = json.loads((PROBES / "probes.json").read_text(encoding="utf-8"))
    for probe in doc["probes"].values():
        assert loso_recipe(probe, probe["layer"]) == Attempt(f"sae:{probe['layer']}", "token", SHIPPED_CS)
        assert probe["metrics"]["leave_one_source_out"]  # the numbers that recipe reproduces
    assert loso_recipe({"trained_on": "mean-pooled transcripts"}, 9) == Attempt("sae:9", "mean")


def test_heldout_breakdown_names_what_is_wrong_with_its_arguments(tmp_path, capsys) -> None:
    import pytest

    from ops.research.probes.heldout_breakdown import main

    for args, message in ((["--concept", "nope"], "the pack has probes ['bias', 'deception'"),
                          (["--source", "nope"], "unknown dataset 'nope'"),
                          (["--source", "code_sven"], "nothing of it is in the residual cache")):
        with pytest.raises(SystemExit) as exit_info:
            main(["--store", str(tmp_path), "--pack", str(PROBES.parent), *args])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
