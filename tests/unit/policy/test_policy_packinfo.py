"""Pack info read from a pack directory (sae/cfg.json + probes/probes.json)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from classifiers.probes.io import save_probes
from monitor.pack.probes_file import RESERVED, ProbeRecord
from monitor.policy import load_pack_info
from monitor.policy.packinfo import PackInfoError


def write_pack(root, d_sae=128, probes=None):
    """A pack without SAE weights: manifest, ``sae/cfg.json`` and probes (what the policy
    validator reads)."""
    (root / "sae").mkdir(parents=True)
    (root / "manifest.json").write_text(json.dumps({"hook_name": "blocks.1.hook_resid_post"}))
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
    records = [
        ProbeRecord(name=name, concept=body["concept"], pooling=body["pooling"],
                    weights=np.zeros(d_sae, np.float32), bias=0.0, thresholds=body["thresholds"],
                    top_features=[tuple(t) for t in body["top_features"]], metrics=body.get("metrics", {}),
                    extra={k: v for k, v in body.items() if k not in RESERVED})
        for name, body in probes.items()
    ]
    save_probes(root / "probes", records, "blocks.1.hook_resid_post")
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
    with pytest.raises(PackInfoError, match="manifest.json"):
        load_pack_info(tmp_path)
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(PackInfoError, match="cfg.json"):
        load_pack_info(tmp_path)
    (tmp_path / "sae").mkdir()
    (tmp_path / "sae" / "cfg.json").write_text("{not json")
    with pytest.raises(PackInfoError, match="invalid JSON"):
        load_pack_info(tmp_path)
