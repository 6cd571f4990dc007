"""A pack's SAE weights are pinned in its manifest: a swapped file is refused at load in
one line naming both hashes, and every committed pack pins its own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from monitor.hashing import file_sha256
from monitor.pack import PackError, load_pack

PACKS = Path(__file__).resolve().parents[3] / "classifiers" / "packs"


@pytest.mark.parametrize("name", sorted(p.parent.name for p in PACKS.glob("*/manifest.json")))
def test_every_committed_pack_pins_its_sae_weights(name):
    pack = load_pack(PACKS / name, with_sae=False)
    assert pack.manifest.sae["weights_sha256"] == file_sha256(PACKS / name / "sae" / "sae_weights.safetensors")


def test_a_swapped_sae_file_is_refused_in_one_line(tmp_path):
    root = tmp_path / "pack"
    shutil.copytree(PACKS / "qwen2.5-coder-0.5b-instruct", root)  # no probes: the manifest is the only pin
    weights = root / "sae" / "sae_weights.safetensors"
    pinned = file_sha256(weights)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(PackError) as err:
        load_pack(root)
    msg = str(err.value)
    assert "\n" not in msg and f"sha256 expected {pinned}" in msg and f"found {file_sha256(weights)}" in msg
    load_pack(root, with_sae=False)  # the cheap checks (no weights read) still pass
