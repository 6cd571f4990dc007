"""SAE evaluation: reconstruction metrics on cached activations, CE-loss recovered on text.

Definitions (also written into the manifest):
- explained variance: ``1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2`` over all
  evaluated tokens (SAELens' ``explained_variance``, pooled, not per-token averaged);
- L0: mean number of non-zero features per token;
- dead fraction: features that never fire on any evaluated token;
- CE-loss recovered: ``(CE_zero_abl - CE_sae) / (CE_zero_abl - CE_clean)`` (SAELens'
  definition), the SAE reconstruction (error term dropped) or zeros replacing the
  residual at the hook on every position the SAE is trained for (those that count:
  :func:`monitor.guard.positions.monitorable`; position 0, special tokens, padding and
  sink-like massive activations are left intact in all three runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
import torch
import torch.nn.functional as F

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ActivationMetrics:
    explained_variance: float
    mse: float
    l0: float
    dead_fraction: float
    n_tokens: int
    fire_counts: torch.Tensor
    """[d_sae] number of tokens each feature fired on."""


@torch.no_grad()
def activation_metrics(sae: Any, acts: torch.Tensor, batch: int = 4096) -> ActivationMetrics:
    """Encode/decode ``acts`` [n, d_in] in batches; pooled EV, MSE, L0, dead fraction."""
    n = acts.shape[0]
    d_sae = int(sae.cfg.d_sae)
    sse = torch.zeros((), dtype=torch.float64)
    sum_x = torch.zeros(acts.shape[1], dtype=torch.float64)
    sum_x2 = torch.zeros((), dtype=torch.float64)
    l0_sum = 0.0
    fires = torch.zeros(d_sae, dtype=torch.int64)
    for i in range(0, n, batch):
        x = acts[i : i + batch].float()
        z = sae.encode(x)
        x_hat = sae.decode(z)
        sse += (x - x_hat).double().pow(2).sum()
        sum_x += x.double().sum(0)
        sum_x2 += x.double().pow(2).sum()
        active = z != 0
        l0_sum += float(active.sum())
        fires += active.sum(0)
    total_var = sum_x2 - sum_x.pow(2).sum() / n
    return ActivationMetrics(
        explained_variance=float(1 - sse / total_var),
        mse=float(sse / n),
        l0=l0_sum / n,
        dead_fraction=float((fires == 0).float().mean()),
        n_tokens=n,
        fire_counts=fires,
    )


@dataclass(frozen=True)
class CEMetrics:
    ce_clean: float
    ce_sae: float
    ce_zero_ablation: float
    ce_loss_recovered: float
    n_tokens: int


@torch.no_grad()
def ce_loss_recovered(
    model: Any, sae: Any, hook_name: str, sequences: Sequence[torch.Tensor], special_ids: Sequence[int],
    batch_tokens: int = 2048, weights: str = "fp32",
) -> CEMetrics:
    """Next-token CE over ``sequences`` (1-D token tensors) clean, with the SAE spliced in,
    and with the residual zeroed at ``hook_name``; see the module docstring."""
    from monitor.engine.fastpath import FastForward
    from monitor.engine.hooks import hook_scope
    from monitor.guard.positions import monitorable

    ff = FastForward(model, weights)  # type: ignore[arg-type]
    mode = {"m": "clean"}

    def splice(x: torch.Tensor, hook: Any = None) -> torch.Tensor | None:  # noqa: ARG001 - hook signature
        if mode["m"] == "clean":
            return None
        counted = monitorable(current["toks"], special_ids=special_ids, lengths=current["lens"], resid=x).mask
        new = sae.decode(sae.encode(x)) if mode["m"] == "sae" else torch.zeros_like(x)
        return torch.where(counted[..., None], new, x)

    current: dict[str, torch.Tensor] = {}
    totals = {"clean": 0.0, "sae": 0.0, "zero": 0.0}
    n_tok = 0
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    batches: list[list[int]] = []
    for i in order:
        if batches and (len(batches[-1]) + 1) * len(sequences[i]) <= batch_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    with hook_scope(model, [(hook_name, splice)]):
        for b in batches:
            lens = [len(sequences[i]) for i in b]
            width = max(lens)
            toks = torch.zeros(len(b), width, dtype=torch.long)
            for r, i in enumerate(b):
                toks[r, : lens[r]] = sequences[i].long()
            current["toks"], current["lens"] = toks, torch.tensor(lens)
            target = toks[:, 1:]
            valid = torch.arange(width - 1)[None, :] < (torch.tensor(lens)[:, None] - 1)
            for m in totals:
                mode["m"] = m
                resid = ff.forward(toks, ff.new_cache(batch=len(b), capacity=width))
                logits = ff.logits(resid[:, :-1])
                ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none")
                totals[m] += float(ce[valid.reshape(-1)].sum())
            n_tok += int(valid.sum())
    clean, with_sae, zero = (totals[k] / n_tok for k in ("clean", "sae", "zero"))
    rec = (zero - with_sae) / (zero - clean)
    log.info("ce_eval", ce_clean=round(clean, 4), ce_sae=round(with_sae, 4), ce_zero=round(zero, 4),
             recovered=round(rec, 4), tokens=n_tok)
    return CEMetrics(ce_clean=clean, ce_sae=with_sae, ce_zero_ablation=zero, ce_loss_recovered=rec, n_tokens=n_tok)
