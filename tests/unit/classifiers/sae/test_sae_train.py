"""Training on cached activations: checkpoints, resume after an interruption, fold."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from classifiers.sae import train as train_mod
from classifiers.sae.architectures import SAEShape, architecture_names, build_training_sae
from classifiers.sae.train import TrainConfig, latest_checkpoint, train_sae

D_IN, D_SAE = 16, 64


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _acts(n: int = 3000) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(40, D_IN, generator=g) * 5
    codes = (torch.rand(n, 40, generator=g) < 0.08).float() * torch.rand(n, 40, generator=g) * 3
    return (codes @ basis + 0.05 * torch.randn(n, D_IN, generator=g)).half()


def _shape() -> SAEShape:
    return SAEShape(d_in=D_IN, d_sae=D_SAE, k=4, hook_name="blocks.0.hook_resid_post", model_name="toy")


CFG = TrainConfig(architecture="topk", d_sae=D_SAE, k=4, batch_size=64, epochs=3.0, checkpoint_every=40,
                  log_every=1000, lr=3e-3)


def test_training_learns_and_folds_normalisation(tmp_path: Path) -> None:
    acts = _acts()
    sae = train_sae(acts, CFG, _shape(), tmp_path / "run")
    x = acts[:500].float()
    x_hat = sae.decode(sae.encode(x))
    ev = 1 - (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    assert float(ev) > 0.5
    assert sae.cfg.normalize_activations == "none"  # takes raw residuals
    assert latest_checkpoint(tmp_path / "run" / "checkpoints") is not None


def test_resume_after_interrupt_matches_uninterrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    acts = _acts()
    ref = train_sae(acts, CFG, _shape(), tmp_path / "ref")

    real_stream = train_mod._batch_stream

    def interrupting(*args, **kwargs):
        for i, batch in enumerate(real_stream(*args, **kwargs)):
            if i == 60:
                os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C / kill -INT does to the job
            yield batch

    monkeypatch.setattr(train_mod, "_batch_stream", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train_sae(acts, CFG, _shape(), tmp_path / "run")
    ckpt = latest_checkpoint(tmp_path / "run" / "checkpoints")
    assert ckpt is not None and 40 < int(ckpt.name.split("_")[1]) < 140
    monkeypatch.setattr(train_mod, "_batch_stream", real_stream)
    resumed = train_sae(acts, CFG, _shape(), tmp_path / "run")
    torch.testing.assert_close(resumed.W_dec, ref.W_dec, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(resumed.b_enc, ref.b_enc, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["topk", "jumprelu", "standard"])
def test_every_architecture_builds_with_normalisation(name: str) -> None:
    sae = build_training_sae(name, _shape())
    assert sae.cfg.architecture() == name
    assert sae.cfg.normalize_activations == "expected_average_only_in"
    assert set(architecture_names()) >= {"topk", "jumprelu", "standard"}
    z = sae.encode(torch.randn(3, D_IN))
    assert z.shape == (3, D_SAE)
    assert sae.decode(z).shape == (3, D_IN)


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown SAE architecture"):
        build_training_sae("nope", _shape())


def test_dead_window_under_one_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="under one batch"):
        TrainConfig(batch_size=64, dead_window_tokens=10)


def test_short_dead_window_revives_features_that_never_fire(tmp_path: Path) -> None:
    """With a dead window shorter than the run, TopK's auxiliary loss reaches the features
    that stay silent, and fewer of them are silent on held-out data."""
    acts = _acts(4000)
    held = _acts(6000)[4000:].float()

    def silent(cfg: TrainConfig, name: str) -> int:
        torch.manual_seed(0)
        sae = train_sae(acts, cfg, SAEShape(d_in=D_IN, d_sae=256, k=4, hook_name="blocks.0.hook_resid_post",
                                            model_name="toy"), tmp_path / name)
        return int((sae.encode(held) > 0).sum(0).eq(0).sum())

    base = TrainConfig(architecture="topk", d_sae=256, k=4, batch_size=64, epochs=2.0, checkpoint_every=10_000,
                       log_every=1000, lr=3e-3)
    from dataclasses import replace
    default, short = silent(base, "default"), silent(replace(base, dead_window_tokens=640), "short")
    assert short < default, (short, default)
