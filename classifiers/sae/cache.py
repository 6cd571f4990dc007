"""Cache residual activations of the corpus to disk (fp16 shards), resumable.

The forward stops right after the deepest requested layer (``FastForward`` with
``stop_at_layer``). Rows of similar length are batched and right-padded (causal
attention: padding never changes earlier positions). Kept positions: those that count
(:func:`monitor.guard.positions.monitorable`): not position 0 (the attention sink), not
padding, not special tokens; sink-like rows are dropped when the shards are read.

Shard ``{split}_{i:05d}.safetensors`` holds ``acts.<hook_name>`` [n, d_model] fp16 plus
``token``/``doc``/``pos`` int32 for every kept position. Shards are written atomically;
a rerun skips those that already hold every requested hook, so an interrupted job
resumes where it stopped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from classifiers.sae.corpus import Corpus
from monitor.engine.hooks import capture
from monitor.guard import positions
from monitor.guard.positions import OUTLIER_NORM_FACTOR, monitorable

log = structlog.get_logger(__name__)


def hook_layer(hook_name: str) -> int:
    """``blocks.15.hook_resid_post`` -> 15 (only residual hooks after a block)."""
    parts = hook_name.split(".")
    if len(parts) != 3 or parts[0] != "blocks" or parts[2] != "hook_resid_post" or not parts[1].isdigit():
        raise ValueError(f"expected a hook name like 'blocks.15.hook_resid_post', got {hook_name!r}")
    return int(parts[1])


@dataclass(frozen=True)
class ShardPlan:
    split: str
    index: int
    docs: range
    tokens: int

    @property
    def name(self) -> str:
        return f"{self.split}_{self.index:05d}.safetensors"


def plan_shards(corpus: Corpus, split: str, shard_tokens: int, max_tokens: int | None) -> list[ShardPlan]:
    """Deterministic shard boundaries over the split's documents (same on every rerun)."""
    docs = corpus.split_docs(split)
    plans: list[ShardPlan] = []
    start, acc, total = docs.start, 0, 0
    for i in docs:
        acc += int(corpus.offsets[i + 1] - corpus.offsets[i])
        if acc >= shard_tokens or i == docs.stop - 1:
            plans.append(ShardPlan(split, len(plans), range(start, i + 1), acc))
            total += acc
            start, acc = i + 1, 0
            if max_tokens is not None and total >= max_tokens:
                break
    return plans


def shard_hooks(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    with safe_open(str(path), framework="pt") as f:
        return {k[len("acts.") :] for k in f.keys() if k.startswith("acts.")}  # noqa: SIM118


def _batches(corpus: Corpus, docs: range, batch_tokens: int) -> Iterator[list[int]]:
    order = sorted(docs, key=lambda i: int(corpus.offsets[i + 1] - corpus.offsets[i]))
    batch: list[int] = []
    for i in order:
        length = int(corpus.offsets[i + 1] - corpus.offsets[i])
        if batch and (len(batch) + 1) * length > batch_tokens:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


@torch.no_grad()
def residuals_for_docs(
    model: Any, corpus: Corpus, doc_ids: Sequence[int], hook_names: Sequence[str], special_ids: Sequence[int],
    bf16: bool = False,
) -> dict[str, torch.Tensor]:
    """Run one right-padded batch; return kept positions' residuals and their token/doc/pos."""
    from monitor.engine.fastpath import FastForward

    layers = [hook_layer(h) for h in hook_names]
    lens = [int(corpus.offsets[i + 1] - corpus.offsets[i]) for i in doc_ids]
    width = max(lens)
    toks = torch.zeros(len(doc_ids), width, dtype=torch.long)
    for r, i in enumerate(doc_ids):
        toks[r, : lens[r]] = corpus.doc(i).long()
    with capture(model, {h: h for h in hook_names}) as captured:
        ff = FastForward(model)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            ff.forward(toks, ff.new_cache(batch=len(doc_ids), capacity=width), stop_at_layer=max(layers) + 1)
    pos = torch.arange(width)[None, :].expand(len(doc_ids), -1)
    # sink-like rows are dropped when the shards are read (load_shards), over all of them
    keep = monitorable(toks, special_ids=special_ids, lengths=torch.tensor(lens)).mask
    out = {f"acts.{h}": captured[h][keep].to(torch.float16).contiguous() for h in hook_names}
    out["token"] = toks[keep].to(torch.int32)
    out["doc"] = torch.tensor(doc_ids, dtype=torch.int32)[:, None].expand(-1, width)[keep].contiguous()
    out["pos"] = pos[keep].to(torch.int32).contiguous()
    return out


def cache_split(
    model: Any,
    corpus: Corpus,
    hook_names: Sequence[str],
    out_dir: Path,
    split: str,
    special_ids: Sequence[int],
    max_tokens: int | None = None,
    shard_tokens: int = 50_000,
    batch_tokens: int = 4096,
    bf16: bool = False,
) -> list[Path]:
    """Cache ``split`` ("train"/"eval") up to ``max_tokens``; returns the shard paths.

    ``bf16=True`` runs the forward under bfloat16 autocast (~1.7x faster on AMX CPUs;
    measured against fp32 at layer 15: 1 - EV = 1e-4, mean relative error 0.6%)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plans = plan_shards(corpus, split, shard_tokens, max_tokens)
    paths: list[Path] = []
    done_tokens, t0 = 0, time.perf_counter()
    todo = sum(p.tokens for p in plans if not set(hook_names) <= shard_hooks(out_dir / p.name))
    for plan in plans:
        path = out_dir / plan.name
        paths.append(path)
        if set(hook_names) <= shard_hooks(path):
            continue
        parts = [residuals_for_docs(model, corpus, b, hook_names, special_ids, bf16=bf16)
                 for b in _batches(corpus, plan.docs, batch_tokens)]
        shard = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        tmp = path.with_suffix(".tmp")
        save_file(shard, str(tmp))
        os.replace(tmp, path)
        done_tokens += plan.tokens
        rate = done_tokens / (time.perf_counter() - t0)
        log.info("shard_cached", split=split, bf16=bf16, shard=plan.index, of=len(plans), kept=int(shard["token"].numel()),
                 tok_per_s=round(rate), eta_min=round((todo - done_tokens) / max(rate, 1e-9) / 60, 1))
    return paths


#: Rows whose residual norm exceeds this multiple of the median are attention-sink-like
#: "massive activations" (seen at position 1 of some windows: norm ~24,000 vs ~170) and
#: are dropped like position 0.
def sink_like(x: torch.Tensor, factor: float = OUTLIER_NORM_FACTOR) -> torch.Tensor:
    """Bool mask over the leading dims of ``x`` [..., d]: norm > factor x median norm (the
    sink-like rule of :mod:`monitor.guard.positions`, over rows already kept)."""
    return positions.sink_like(x, factor=factor).mask


def load_shards(paths: Sequence[Path], hook_name: str, with_index: bool = False,
                drop_outliers: bool = True) -> dict[str, torch.Tensor]:
    """Concatenate the shards' activations for ``hook_name`` (fp16) and, optionally, their
    index; rows flagged by :func:`sink_like` are dropped unless ``drop_outliers=False``."""
    keys = [f"acts.{hook_name}"] + (["token", "doc", "pos"] if with_index else [])
    out: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    for p in paths:
        with safe_open(str(p), framework="pt") as f:
            for k in keys:
                out[k].append(f.get_tensor(k))
    res = {("acts" if k.startswith("acts.") else k): torch.cat(v) for k, v in out.items()}
    if drop_outliers:
        bad = sink_like(res["acts"])
        if bool(bad.any()):
            log.info("dropped_sink_like_rows", hook=hook_name, rows=int(bad.sum()), of=int(bad.numel()))
            res = {k: v[~bad] for k, v in res.items()}
    return res
