"""A guard pack reads one model's residual stream: a pack built for another model is refused
in one line naming both models, both weight hashes and the fix, before anything starts
(the daemon checks a registered offline model's pinned hash before loading it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.model.registry import QWEN_05B, SMOLLM2
from monitor.pack import PackError, load_pack
from tests.unit.guard.test_pack_sae_match import PACK, copy_pack


def _pack_for(tmp_path: Path, model: dict[str, str] | None) -> Path:
    pack = copy_pack(tmp_path)
    path = pack / "manifest.json"
    doc = json.loads(path.read_text())
    if model is None:
        del doc["model"]
    else:
        doc["model"] = model
    path.write_text(json.dumps(doc))
    return pack


def test_shipped_pack_records_the_default_model_and_accepts_it() -> None:
    pack = load_pack(PACK, with_sae=False)
    assert pack.manifest.model is not None
    assert (pack.manifest.model.id, pack.manifest.model.weights_sha256) == (SMOLLM2.spec, SMOLLM2.gguf_sha256)
    pack.check_model_spec(SMOLLM2.spec)
    pack.check_model("smollm2 under another name", SMOLLM2.gguf_sha256)  # the weights decide
    pack.check_model_spec("hf:gpt2")  # unknown before loading: checked once loaded


def test_pack_for_another_model_is_refused_in_one_line(tmp_path: Path) -> None:
    pack = load_pack(_pack_for(tmp_path, {"id": QWEN_05B.spec, "weights_sha256": QWEN_05B.gguf_sha256}),
                     with_sae=False)
    with pytest.raises(PackError) as info:
        pack.check_model(SMOLLM2.spec, SMOLLM2.gguf_sha256)
    msg = str(info.value)
    assert "\n" not in msg
    for part in (QWEN_05B.spec, SMOLLM2.spec, QWEN_05B.gguf_sha256[:12], SMOLLM2.gguf_sha256[:12],
                 f"--model {QWEN_05B.spec}", f"a pack built for {SMOLLM2.spec}"):
        assert part in msg
    with pytest.raises(PackError, match=f"built for model {QWEN_05B.spec}"):
        pack.check_model_spec(SMOLLM2.spec)  # the pinned hash, without loading the model


def test_pack_that_records_no_model_is_refused(tmp_path: Path) -> None:
    pack = load_pack(_pack_for(tmp_path, None), with_sae=False)
    with pytest.raises(PackError, match="records no model"):
        pack.check_model(SMOLLM2.spec, SMOLLM2.gguf_sha256)


def test_manifest_is_validated_naming_file_and_field(tmp_path: Path) -> None:
    pack = _pack_for(tmp_path, {"id": SMOLLM2.spec, "weights_sha": "x"})
    with pytest.raises(PackError, match=r"manifest.json: model.weights_sha256: Field required"):
        load_pack(pack, with_sae=False)


@pytest.mark.parametrize("other", [QWEN_05B.spec, "qwen2.5-coder-1.5b-instruct"])
def test_serve_refuses_the_shipped_pack_for_another_model_before_loading_it(
        other: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.cli import main

    def no_model_load(*a: object, **k: object) -> None:
        raise AssertionError("the model was loaded before the pack was checked")

    monkeypatch.setattr("monitor.model.load_model", no_model_load)
    code = main(["serve", "--model", other, "--pack", str(PACK), "--spool-dir", str(tmp_path / "spool"),
                 "--no-watch"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert f"built for model {SMOLLM2.spec}" in err and f"the model is {other}" in err
    assert f"--model {SMOLLM2.spec}" in err


def test_eval_probes_refuses_the_pack_for_another_model_before_loading_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.cli import main

    def no_model_load(*a: object, **k: object) -> None:
        raise AssertionError("the model was loaded before the pack was checked")

    monkeypatch.setattr("monitor.model.load_model", no_model_load)
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "hello"}],
                                "label": 1, "concept": "deception"}) + "\n")
    code = main(["eval-probes", "--pack", str(PACK), "--data", str(data), "--model", QWEN_05B.spec])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"built for model {SMOLLM2.spec}" in err and f"the model is {QWEN_05B.spec}" in err
