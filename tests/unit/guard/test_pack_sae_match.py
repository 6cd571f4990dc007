"""Probes trained on another SAE are refused when a pack is loaded (load_pack, Guard.from_pack,
the daemon's Runtime.build): one error naming both sha256s and both files.

Feature ids are only meaningful for the SAE the probes were trained on; a retrained SAE
with the old probes would score confident nonsense, so the daemon must not start.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from monitor.pack import PackError, check_probes_sae, load_pack

REPO = Path(__file__).resolve().parents[3]
PACK = REPO / "classifiers" / "packs" / "smollm2-135m-instruct"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_pack(tmp_path: Path) -> Path:
    """The committed pack without its ROC images (the SAE weights are ~10 MB)."""
    dst = tmp_path / "pack"
    shutil.copytree(PACK, dst, ignore=shutil.ignore_patterns("*.png"))
    return dst


def retrain_sae(pack: Path) -> tuple[str, str]:
    """Change one byte of the SAE weights' data (still a valid file) and pin the new file in
    the manifest, as ``sae-eval --pack`` does for a retrained SAE: (old sha, new sha)."""
    weights = pack / "sae" / "sae_weights.safetensors"
    old = sha256(weights)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    manifest = json.loads((pack / "manifest.json").read_text())
    manifest["sae"]["weights_sha256"] = sha256(weights)
    (pack / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return old, sha256(weights)


def test_committed_pack_probes_match_its_sae() -> None:
    doc = json.loads((PACK / "probes" / "probes.json").read_text())
    assert doc["sae_sha256"] == sha256(PACK / "sae" / "sae_weights.safetensors")
    check_probes_sae(PACK, doc)
    assert load_pack(PACK, with_sae=False).probes is not None


def test_probes_from_another_sae_are_refused_naming_hashes_and_files(tmp_path: Path) -> None:
    pack = copy_pack(tmp_path)
    old, new = retrain_sae(pack)
    with pytest.raises(PackError) as info:
        load_pack(pack, with_sae=False)
    msg = str(info.value)
    assert "\n" not in msg
    assert old in msg and new in msg
    assert str(pack / "probes" / "probes.json") in msg
    assert str(pack / "sae" / "sae_weights.safetensors") in msg
    assert "saeguard train-probes" in msg


def test_probes_json_without_sae_hash_is_refused(tmp_path: Path) -> None:
    pack = copy_pack(tmp_path)
    path = pack / "probes" / "probes.json"
    doc = json.loads(path.read_text())
    del doc["sae_sha256"]
    path.write_text(json.dumps(doc))
    with pytest.raises(PackError, match="records no sae_sha256"):
        load_pack(pack, with_sae=False)


def test_pack_without_probes_needs_no_hash(tmp_path: Path) -> None:
    pack = copy_pack(tmp_path)
    shutil.rmtree(pack / "probes")
    retrain_sae(pack)
    assert load_pack(pack, with_sae=False).probes is None
    check_probes_sae(pack, {"schema_version": 1, "probes": {}})


def test_features_show_does_not_need_matching_probes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    pack = copy_pack(tmp_path)
    retrain_sae(pack)
    assert main(["features", "show", "1", "--pack", str(pack)]) == 0
    assert "feature 1:" in capsys.readouterr().out


def test_guard_from_a_hand_built_pack_refuses_mismatched_probes(tmp_path: Path) -> None:
    from monitor.guard import Guard
    from tests.toymodel import ToyTokenizer

    pack_dir = copy_pack(tmp_path)
    old, new = retrain_sae(pack_dir)
    pack = load_pack(pack_dir, check_probes=False)
    with pytest.raises(PackError, match=f"sha256 {old}.*sha256 {new}"):
        Guard.from_pack(pack, ToyTokenizer())
    good = load_pack(PACK)
    assert Guard.from_pack(good, ToyTokenizer()).probes.names == ("deception", "sycophancy", "unsafe_code", "bias")


def test_daemon_does_not_start_with_probes_from_another_sae(tmp_path: Path) -> None:
    from monitor.server.runtime import Runtime, StartupError
    from monitor.server.settings import ServerSettings

    pack = copy_pack(tmp_path)
    old, new = retrain_sae(pack)
    settings = ServerSettings(pack_dir=pack, policy=REPO / "policies" / "default.yaml",
                              spool_dir=tmp_path / "spool", threads=1)
    with pytest.raises(StartupError) as info:
        Runtime.build(settings)
    assert str(info.value).startswith("guard pack: ")
    assert old in str(info.value) and new in str(info.value)
