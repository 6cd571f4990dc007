"""``--weights auto`` (the default) runs the fastest weight format that passed the pack's
quality gates, as its manifest records; fp32 on CUDA or for a pack that records none; an
explicit format always wins; a manifest naming an unknown format is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.pack import PackError, load_pack
from ops.bench.weights_quality import backs, pack_files
from tests.unit.guard.test_pack_sae_match import copy_pack


def _pack(tmp_path: Path, weights: object) -> Path:
    pack = copy_pack(tmp_path)
    path = pack / "manifest.json"
    doc = json.loads(path.read_text())
    if weights is None:
        doc.pop("weights", None)
    else:
        doc["weights"] = weights
    path.write_text(json.dumps(doc))
    return pack


def test_auto_runs_the_gated_format_on_a_cpu_and_fp32_elsewhere(tmp_path: Path) -> None:
    pack = load_pack(_pack(tmp_path, "int4"), with_sae=False)
    assert pack.weight_format("auto", "cpu") == "int4"
    assert pack.weight_format("auto", "cuda:0") == "fp32"
    assert pack.weight_format("bf16", "cpu") == "bf16"
    assert pack.weight_format("fp32", "cpu") == "fp32"


def test_a_pack_without_a_gated_format_runs_fp32(tmp_path: Path) -> None:
    pack = load_pack(_pack(tmp_path, None), with_sae=False)
    assert pack.weight_format("auto", "cpu") == "fp32"


def test_a_manifest_naming_an_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="weights"):
        load_pack(_pack(tmp_path, "int2"), with_sae=False)


def test_the_shipped_packs_record_the_formats_their_gates_passed() -> None:
    root = Path(__file__).resolve().parents[3] / "classifiers" / "packs"
    gated = {p.name: load_pack(p, with_sae=False).manifest.weights for p in sorted(root.iterdir())}
    results = root.parents[1] / "ops" / "bench" / "results"
    for name, fmt in gated.items():
        if fmt in (None, "fp32"):
            continue
        records = [json.loads(f.read_text()) for f in sorted(results.glob(f"weights_quality_{name}*.json"))]
        # the gate must have measured the pack as it is now: a new SAE or new probes need a new gate
        assert any(backs(d, root / name, fmt) for d in records), \
            f"{name} runs {fmt} but no gate record in {results} says the pack's current files pass"


def test_a_gate_record_of_other_pack_files_does_not_back_a_format(tmp_path: Path) -> None:
    """A pack whose SAE changed after its gate ran (same model, same format) is not backed."""
    pack = copy_pack(tmp_path)
    record = {"model": pack.name, "formats": {"int4": {"passes": True}}, "pack_files": pack_files(pack)}
    assert backs(record, pack, "int4")
    assert not backs(record, pack, "bf16")
    sae = pack / "sae" / "sae_weights.safetensors"
    sae.write_bytes(sae.read_bytes() + b"\0")
    assert not backs(record, pack, "int4")


def test_without_a_pack_auto_runs_fp32_and_an_explicit_format_still_wins() -> None:
    from monitor.pack.loader import resolve_weight_format

    assert resolve_weight_format("auto", "cpu", None) == "fp32"
    assert resolve_weight_format("int4", "cpu", None) == "int4"
    assert resolve_weight_format("auto", "cpu", "bf16") == "bf16"
