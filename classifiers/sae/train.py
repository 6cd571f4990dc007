"""Train a SAELens SAE on cached activations, with checkpoints and resume.

SAELens' ``SAETrainer`` does the optimisation (its ``step`` seam: activation scaling,
TopK/JumpReLU losses, dead-feature tracking, Adam, LR schedule, grad clipping); this
module feeds it shuffled batches from the fp16 activation cache held in memory and runs
the outer loop: progress lines, a checkpoint every ``checkpoint_every`` steps and on
SIGTERM/SIGINT, and resume from the newest checkpoint (weights, optimizer, scheduler,
sparsity statistics, activation scaler; the data order is a pure function of the seed
and the step, so a resumed run sees the same batches it would have).

At the end the activation-normalisation factor is folded into the weights, so the saved
inference SAE takes raw residuals (``cfg.normalize_activations == "none"``).
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog
import torch
from safetensors.torch import load_file

from classifiers.sae.architectures import SAEShape, build_training_sae

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    architecture: str = "topk"
    """SAELens architecture name: topk | jumprelu | standard."""
    d_sae: int = 4608
    """Dictionary size (8x d_model for SmolLM2-135M)."""
    k: int = 32
    """TopK k / JumpReLU target L0."""
    l0_coefficient: float = 1.0
    """JumpReLU L0-penalty weight (standard: L1 weight)."""
    epochs: float = 1.0
    """Passes over the cached training activations."""
    batch_size: int = 4096
    lr: float = 3e-4
    warmup_frac: float = 0.02
    decay_frac: float = 0.2
    """Final fraction of steps with linear LR decay to lr/10."""
    checkpoint_every: int = 200
    """Steps between checkpoints."""
    log_every: int = 25
    seed: int = 0
    norm_estimate_batches: int = 50
    autocast: bool = True
    """bfloat16 autocast for the SAE matmuls (AMX/AVX512-bf16 CPUs run them ~4x faster)."""
    dead_window_tokens: int | None = None
    """A feature that has not fired in this many training tokens counts as dead, and TopK's
    auxiliary loss (SAELens AuxK: dead features reconstruct the residual error) pulls it
    back. None: a quarter of the run, between 50 and 1000 batches (what the first packs used).
    Set it below the held-out slice the pack's dead-feature figure is measured on, or features
    that fire once in 200k tokens count as alive in training and dead in the report."""

    def __post_init__(self) -> None:
        if self.dead_window_tokens is not None and self.dead_window_tokens < self.batch_size:
            raise ValueError(f"--dead-window-tokens {self.dead_window_tokens} is under one batch ({self.batch_size})")


def _batch_stream(acts: torch.Tensor, batch: int, seed: int, start_step: int) -> Iterator[torch.Tensor]:
    """Batches of a fresh seeded permutation per epoch, starting at global step ``start_step``."""
    n = acts.shape[0]
    per_epoch = n // batch
    step = start_step
    while True:
        epoch, within = divmod(step, per_epoch)
        gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        perm = torch.randperm(n, generator=gen)
        for b in range(within, per_epoch):
            yield acts[perm[b * batch : (b + 1) * batch]].float()
            step += 1


def _dead_window_steps(cfg: TrainConfig, total_steps: int) -> int:
    if cfg.dead_window_tokens is None:
        return max(50, min(1000, total_steps // 4))
    return cfg.dead_window_tokens // cfg.batch_size


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    done = [p for p in ckpt_dir.glob("step_*") if (p / "DONE").is_file()]
    return max(done, key=lambda p: int(p.name.split("_")[1])) if done else None


def _explained_variance(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    x, x_hat = x.detach(), x_hat.detach()
    return float(1 - (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum())


def train_sae(acts: torch.Tensor, cfg: TrainConfig, shape: SAEShape, run_dir: Path, resume: bool = True) -> Any:
    """Train on ``acts`` [n, d_in] (fp16 ok); returns the trained SAELens TrainingSAE
    with the normalisation folded in. Checkpoints go to ``run_dir/checkpoints``."""
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    torch.manual_seed(cfg.seed)
    sae = build_training_sae(cfg.architecture, shape)
    n = acts.shape[0]
    steps_per_epoch = n // cfg.batch_size
    total_steps = max(1, int(math.ceil(cfg.epochs * steps_per_epoch)))
    tcfg = SAETrainerConfig(
        total_training_samples=total_steps * cfg.batch_size,
        train_batch_size_samples=cfg.batch_size,
        lr=cfg.lr, lr_end=cfg.lr / 10, lr_scheduler_name="constant",
        lr_warm_up_steps=int(cfg.warmup_frac * total_steps), lr_decay_steps=int(cfg.decay_frac * total_steps),
        dead_feature_window=_dead_window_steps(cfg, total_steps),
        feature_sampling_window=10**9, n_checkpoints=0, checkpoint_path=None,
        n_batches_for_norm_estimate=cfg.norm_estimate_batches, autocast=cfg.autocast,
    )
    ckpt_dir = run_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    trainer: Any = SAETrainer(cfg=tcfg, sae=sae, data_provider=iter(()))
    last = latest_checkpoint(ckpt_dir) if resume else None
    if last is not None:
        state = load_file(str(last / "sae_weights.safetensors"))
        sae.load_state_dict(state)
        trainer.load_trainer_state(last)
        log.info("resumed", checkpoint=str(last), step=trainer.n_training_steps)
    else:
        trainer.activation_scaler.estimate_scaling_factor(
            d_in=shape.d_in, data_provider=_batch_stream(acts, cfg.batch_size, cfg.seed + 777, 0),
            n_batches_for_norm_estimate=cfg.norm_estimate_batches)
        log.info("scaling_factor", value=trainer.activation_scaler.scaling_factor)
        _init_b_dec_to_mean(sae, acts, float(trainer.activation_scaler.scaling_factor), cfg.seed)

    stop = {"flag": False}

    def _on_signal(signum: int, _frame: Any) -> None:
        stop["flag"] = True
        log.warning("signal_received", signal=signum, action="checkpoint and exit")

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        stream = _batch_stream(acts, cfg.batch_size, cfg.seed, trainer.n_training_steps)
        t0, s0 = time.perf_counter(), trainer.n_training_steps
        while trainer.n_training_steps < total_steps and not stop["flag"]:
            out = trainer.step(next(stream))
            trainer.n_training_steps += 1
            step = trainer.n_training_steps
            if step % cfg.log_every == 0 or step == total_steps:
                rate = (step - s0) * cfg.batch_size / (time.perf_counter() - t0)
                with torch.no_grad():
                    l0 = float(out.feature_acts.bool().float().sum(-1).mean())
                log.info("train_step", step=step, of=total_steps, tokens=step * cfg.batch_size,
                         mse=round(float(out.losses["mse_loss"].detach()), 3),
                         ev=round(_explained_variance(out.sae_in, out.sae_out), 4), l0=round(l0, 1),
                         dead=int(trainer.dead_neurons.sum()), lr=trainer.optimizer.param_groups[0]["lr"],
                         tok_per_s=round(rate), eta_min=round((total_steps - step) * cfg.batch_size / rate / 60, 1))
            if step % cfg.checkpoint_every == 0:
                _save_checkpoint(trainer, ckpt_dir, cfg)
        if stop["flag"]:
            _save_checkpoint(trainer, ckpt_dir, cfg)
            raise KeyboardInterrupt("training interrupted; checkpoint saved")
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    _save_checkpoint(trainer, ckpt_dir, cfg)
    trainer.set_final_sae_metadata()
    if trainer.activation_scaler.scaling_factor is not None:
        sae.fold_activation_norm_scaling_factor(trainer.activation_scaler.scaling_factor)
    sae.cfg.metadata.sae_lens_training_version = sae.cfg.metadata.sae_lens_training_version or ""
    sae.eval()
    return sae


@torch.no_grad()
def _init_b_dec_to_mean(sae: Any, acts: torch.Tensor, scale: float, seed: int, n: int = 65_536) -> None:
    """Start the decoder bias at the (scaled) data mean. About half of the residual's
    energy is its mean direction (52% at layers 9 and 15); with ``b_dec = 0`` the encoder
    sees that constant and most features never fire (57% dead in a 300k-token trial)."""
    gen = torch.Generator().manual_seed(seed + 13)
    idx = torch.randperm(acts.shape[0], generator=gen)[:n]
    sae.b_dec.data.copy_(acts[idx].float().mean(0) * scale)
    log.info("b_dec_initialised", norm=round(float(sae.b_dec.norm()), 3))


def _save_checkpoint(trainer: Any, ckpt_dir: Path, cfg: TrainConfig) -> None:
    import json

    path = ckpt_dir / f"step_{trainer.n_training_steps:07d}"
    path.mkdir(parents=True, exist_ok=True)
    trainer.sae.save_model(str(path))
    trainer.save_trainer_state(path)
    (path / "train_config.json").write_text(json.dumps(asdict(cfg)), encoding="utf-8")
    (path / "DONE").write_text("ok", encoding="utf-8")
    for old in sorted(ckpt_dir.glob("step_*"), key=lambda p: p.name)[:-2]:
        if old != path and (old / "DONE").is_file():
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
    log.info("checkpoint_saved", path=str(path))
