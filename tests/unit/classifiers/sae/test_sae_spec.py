"""SAE specs and guard packs: directory round trip (fp16 on disk), saelens: specs through a
stand-in download cache, one-line errors, packs with and without probes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from classifiers.sae.architectures import SAEShape, build_training_sae
from classifiers.sae.export import save_pack_sae
from monitor.pack import PackError, load_pack
from monitor.sae_spec import SAESpecError, load_sae

D_IN, D_SAE = 16, 48


def _trained_like_sae(arch: str = "topk"):
    torch.manual_seed(0)
    sae = build_training_sae(arch, SAEShape(d_in=D_IN, d_sae=D_SAE, k=4, hook_name="blocks.3.hook_resid_post",
                                            model_name="toy"))
    with torch.no_grad():
        for p in sae.parameters():
            p.add_(0.05 * torch.randn_like(p))
    sae.fold_activation_norm_scaling_factor(0.5)
    return sae


@pytest.mark.parametrize("arch", ["topk", "jumprelu"])
def test_directory_round_trip_fp16(tmp_path: Path, arch: str) -> None:
    sae = _trained_like_sae(arch)
    save_pack_sae(sae, tmp_path / "sae")
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert cfg["d_sae"] == D_SAE and cfg["d_in"] == D_IN and cfg["metadata"]["hook_name"] == "blocks.3.hook_resid_post"
    assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.rglob("*.pkl"))
    loaded = load_sae(str(tmp_path / "sae"))
    assert loaded.W_enc.dtype == torch.float32
    x = torch.randn(7, 5, D_IN)
    z = loaded.encode(x)
    assert z.shape == (7, 5, D_SAE)
    assert loaded.decode(z).shape == (7, 5, D_IN)
    ref = sae.decode(sae.encode(x))
    torch.testing.assert_close(loaded.decode(loaded.encode(x)), ref, atol=2e-2, rtol=2e-2)


def test_saelens_spec_uses_the_download_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``saelens:<release>/<sae_id>`` goes through SAE.from_pretrained; the hub download is
    replaced by a directory standing in for the Hugging Face cache."""
    import sae_lens.loading.pretrained_sae_loaders as loaders
    from huggingface_hub.errors import EntryNotFoundError

    release, sae_id = "gpt2-small-res-jb", "blocks.8.hook_resid_pre"
    cache = tmp_path / "hub"
    save_pack_sae(_trained_like_sae(), cache / sae_id)
    calls: list[tuple[str, str]] = []

    def fake_download(repo_id: str, filename: str, **_: object) -> str:
        calls.append((repo_id, filename))
        path = cache / filename
        if not path.is_file():
            raise EntryNotFoundError(f"{filename} not in fixture")
        return str(path)

    monkeypatch.setattr(loaders, "hf_hub_download", fake_download)
    sae = load_sae(f"saelens:{release}/{sae_id}")
    assert sae.cfg.d_sae == D_SAE
    assert calls and all(repo == "jbloom/GPT2-Small-SAEs-Reformatted" for repo, _ in calls)
    assert (sae.encode(torch.randn(2, D_IN))).shape == (2, D_SAE)


@pytest.mark.parametrize(("spec", "message"), [
    ("saelens:no-slash", "expected 'saelens:<release>/<sae_id>'"),
    ("saelens:/x", "expected 'saelens:<release>/<sae_id>'"),
    ("/definitely/not/here", "neither a directory"),
    ("saelens:no-such-release-xyz/blocks.0", "cannot load"),
])
def test_bad_specs_fail_with_one_line(spec: str, message: str) -> None:
    with pytest.raises(SAESpecError, match="") as err:
        load_sae(spec)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_directory_without_weights_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cfg.json").write_text("{}")
    with pytest.raises(SAESpecError, match="missing sae_weights.safetensors"):
        load_sae(str(tmp_path))


def _pack(tmp_path: Path, probes: bool) -> Path:
    root = tmp_path / "pack"
    save_pack_sae(_trained_like_sae(), root / "sae")
    (root / "manifest.json").write_text(json.dumps({"hook_name": "blocks.3.hook_resid_post",
                                                    "sae": {"d_sae": D_SAE}}))
    (root / "features.json").write_text(json.dumps({"n_tokens": 10, "features": {
        "5": {"density": 0.1, "label": "", "top_contexts": [{"activation": 2.0, "token": " cat", "text": "a« cat»"}]}}}))
    if probes:
        (root / "probes").mkdir()
        (root / "probes" / "probes.json").write_text(json.dumps({"schema_version": 1, "probes": {}}))
    return root


@pytest.mark.parametrize("probes", [False, True])
def test_load_pack(tmp_path: Path, probes: bool) -> None:
    pack = load_pack(_pack(tmp_path, probes))
    assert pack.sae.cfg.d_sae == D_SAE
    assert pack.hook_name == "blocks.3.hook_resid_post"
    assert pack.feature(5)["density"] == 0.1
    assert pack.feature(6) is None
    assert (pack.probes is not None) == probes


def test_pack_errors_are_one_line(tmp_path: Path) -> None:
    root = _pack(tmp_path, probes=False)
    (root / "manifest.json").write_text("{not json")
    with pytest.raises(PackError, match=r"manifest.json: invalid JSON at line 1"):
        load_pack(root)
    with pytest.raises(PackError, match="not found"):
        load_pack(tmp_path / "nope")


@pytest.fixture
def _restore_logging():
    """``main()`` configures structlog onto the captured stderr; undo it afterwards."""
    import structlog

    yield
    structlog.reset_defaults()


@pytest.mark.usefixtures("_restore_logging")
def test_features_show_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    root = _pack(tmp_path, probes=False)
    assert main(["features", "show", "5", "--pack", str(root)]) == 0
    out = capsys.readouterr().out
    assert "feature 5: density 0.1" in out and "« cat»" in out
    assert main(["features", "show", "6", "--pack", str(root)]) == 0
    assert "dead" in capsys.readouterr().out
    assert main(["features", "show", "4800", "--pack", str(root)]) == 2
