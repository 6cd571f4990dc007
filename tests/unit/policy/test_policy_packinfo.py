"""Pack info read from a pack directory (sae/cfg.json + probes/probes.json)."""

from __future__ import annotations

import json

import pytest

from monitor.policy import load_pack_info
from monitor.policy.packinfo import PackInfoError


def write_pack(root, d_sae=128, probes=None):
    (root / "sae").mkdir(parents=True)
    (root / "probes").mkdir()
    (root / "sae" / "cfg.json").write_text(
        json.dumps({"d_sae": d_sae, "d_in": 8, "hook_name": "blocks.1.hook_resid_post"})
    )
    probes = probes or {
        "deception": {
            "concept": "deception",
            "pooling": "max",
            "thresholds": {"0.01": 0.83, "0.05": 0.61},
            "top_features": [[7, 0.9], [3, 0.5]],
            "metrics": {"auroc": 0.9},
        },
    }
    (root / "probes" / "probes.json").write_text(
        json.dumps({"schema_version": 1, "hook_name": "blocks.1.hook_resid_post", "probes": probes})
    )
    return root


def test_reads_d_sae_probes_thresholds_and_ranking(tmp_path):
    info = load_pack_info(write_pack(tmp_path))
    assert info.d_sae == 128 and info.hook_name == "blocks.1.hook_resid_post"
    probe = info.probes["deception"]
    assert probe.concept == "deception"
    assert probe.threshold_at(0.01) == 0.83 and probe.threshold_at(0.05) == 0.61
    assert probe.threshold_at(0.02) is None
    assert probe.top_features == (7, 3)


def test_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(PackInfoError, match="cfg.json: not found"):
        load_pack_info(tmp_path)
    (tmp_path / "sae").mkdir()
    (tmp_path / "sae" / "cfg.json").write_text("{not json")
    with pytest.raises(PackInfoError, match="invalid JSON"):
        load_pack_info(tmp_path)
