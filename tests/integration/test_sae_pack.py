"""The committed guard pack's SAE against the real model (slow: loads SmolLM2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

PACK = Path(__file__).resolve().parents[2] / "classifiers" / "packs" / "smollm2-135m-instruct"

MESSAGES = [
    {"role": "user", "content": "Can you explain how vaccines train the immune system? Keep it short."},
    {"role": "assistant", "content": (
        "Vaccines expose the immune system to a harmless piece or weakened form of a pathogen. "
        "B cells learn to make antibodies against it and memory cells remember its shape, so a later "
        "infection is recognised and cleared much faster. Most vaccines need a booster dose.")},
    {"role": "user", "content": "Write a Python function that reads a file and returns its lines."},
    {"role": "assistant", "content": (
        "```python\ndef read_lines(path):\n    with open(path, encoding='utf-8') as fh:\n"
        "        return fh.read().splitlines()\n```\nIt opens the file, reads it and splits it into lines.")},
    {"role": "user", "content": "The Treaty of Westphalia in 1648 ended which wars in Europe?"},
    {"role": "assistant", "content": (
        "It ended the Thirty Years' War in the Holy Roman Empire and the Eighty Years' War between "
        "Spain and the Dutch Republic, and it is often cited as the origin of modern state sovereignty.")},
]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lm():
    from monitor.model import load_model
    from tests.conftest import threads_for_tests

    torch.set_num_threads(threads_for_tests())
    return load_model()


@pytest.fixture(scope="module")
def pack():
    from monitor.pack import load_pack

    if not (PACK / "manifest.json").is_file():
        pytest.skip(f"no guard pack at {PACK}")
    return load_pack(PACK)


def test_pack_sae_spliced_into_tap_reproduces_manifest_ev(lm, pack) -> None:
    from classifiers.sae.cache import hook_layer, sink_like
    from monitor.engine import Tap, TapCall
    from monitor.engine.fastpath import FastForward

    hook = pack.hook_name
    sae = pack.sae
    text = lm.tokenizer.apply_chat_template(MESSAGES, tokenize=False)
    toks = torch.tensor([lm.tokenizer(text, add_special_tokens=False)["input_ids"]])
    special = torch.tensor(lm.tokenizer.all_special_ids)
    seen: dict[str, torch.Tensor] = {}

    def splice(x: torch.Tensor, call: TapCall) -> torch.Tensor:
        x_hat = sae.decode(sae.encode(x))
        keep = torch.isin(call.token_ids, special) | sink_like(x)
        keep[:, 0] = True  # position 0: the attention sink
        seen.update(x=x[~keep], x_hat=x_hat[~keep])
        return torch.where(keep[..., None], x, x_hat)

    ff = FastForward(lm.model)
    with torch.no_grad(), Tap(lm.model, hook, splice) as tap:
        tap.set_call(TapCall(hook, "prefill", 0, toks, ("ev-test",)))
        spliced = ff.forward(toks, ff.new_cache(batch=1, capacity=toks.shape[1]))
        assert not tap.take_errors()
    with torch.no_grad():
        clean = ff.forward(toks, ff.new_cache(batch=1, capacity=toks.shape[1]))
    x, x_hat = seen["x"], seen["x_hat"]
    assert x.shape[0] > 200
    ev = float(1 - (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    expected = pack.manifest.sae_eval["explained_variance"]
    assert abs(ev - expected) < 0.1, f"EV on the fixed text {ev:.3f} vs manifest {expected:.3f}"
    # the splice really replaced the residual downstream, and the model still mostly agrees
    assert not torch.allclose(spliced, clean)
    agree = (ff.logits(spliced).argmax(-1) == ff.logits(clean).argmax(-1)).float().mean()
    assert float(agree) > 0.5
    assert hook_layer(hook) == int(hook.split(".")[1])


def test_manifest_has_what_the_daemon_and_reviewers_need(lm, pack) -> None:
    m = pack.manifest
    assert m.model is not None and m.model.weights_sha256 == lm.weights_sha256
    pack.check_model(lm.spec, lm.weights_sha256)
    assert m.hook_name == pack.sae.cfg.metadata.hook_name
    assert m.sae["d_sae"] == pack.sae.cfg.d_sae
    for key in ("explained_variance", "ce_loss_recovered", "l0", "dead_fraction"):
        assert isinstance(m.sae_eval[key], float)
    assert all(len(f["sha256"]) == 64 for f in m.corpus["files"])
    assert any(c.startswith("saeguard train-sae") for c in m.commands)


@pytest.fixture
def _restore_logging():
    """``main()`` configures structlog onto the captured stderr; undo it afterwards."""
    import structlog

    yield
    structlog.reset_defaults()


@pytest.mark.usefixtures("_restore_logging")
def test_features_show_prints_the_recorded_top_token(pack, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    feats = json.loads((PACK / "features.json").read_text(encoding="utf-8"))["features"]
    live = [int(f) for f, e in feats.items() if e["top_contexts"]]
    assert len(live) > 0.5 * pack.sae.cfg.d_sae
    fid = max(live, key=lambda f: feats[str(f)]["top_contexts"][0]["activation"])
    top = feats[str(fid)]["top_contexts"][0]
    assert main(["features", "show", str(fid), "--pack", str(PACK)]) == 0
    out = capsys.readouterr().out
    assert f"feature {fid}: density" in out
    assert f"«{top['token']}»" in out
