"""Per-token residuals of the assistant content, one forward per prompt.

Transcripts that share a prompt (the two sides of a contrastive pair, BBQ's three answers
to one context) share the forward pass over that prompt: the prompt is run once into a
KV cache, the cache is copied into one row per answer, and the answers are run as one
right-padded batch after it. Causal attention makes this exactly the computation of each
full transcript on its own (checked in the tests against a plain forward).

Residuals are read with forward hooks on ``blocks.L.hook_resid_post`` (the fast path calls
residual hook points that have hooks); the hooks are removed in ``finally``. The forward
stops after the deepest requested layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from classifiers.features.render import Rendered
from monitor.engine.hooks import capture


@dataclass(frozen=True)
class Residuals:
    """The content-token residuals of one transcript."""

    ids: np.ndarray
    """Content token ids [n] int32 (possibly truncated to the extraction cap)."""
    layers: dict[int, np.ndarray]
    """Layer -> residual after that block, [n, d_model] float16."""


@dataclass(frozen=True)
class BasePrefix:
    """A KV cache of a start shared by many prompts (e.g. the default system prompt)."""

    ids: tuple[int, ...]
    """The shared token ids."""
    cache: Any
    """KVCache holding them (batch 1)."""
    stop: int
    """Layers run into the cache."""


@torch.inference_mode()
def base_prefix(ff: Any, ids: Sequence[int], stop: int) -> BasePrefix:
    """Run ``ids`` once into a cache for :func:`residuals_for_prompt_group`."""
    cache = ff.new_cache(batch=1, capacity=max(len(ids), 1))
    ff.forward(torch.tensor([list(ids)], dtype=torch.long), cache, stop_at_layer=stop)
    return BasePrefix(tuple(ids), cache, stop)


def hook_name(layer: int) -> str:
    """``blocks.{layer}.hook_resid_post``."""
    return f"blocks.{layer}.hook_resid_post"


def _content(r: Rendered, max_content_tokens: int | None) -> list[int]:
    end = r.end if max_content_tokens is None else min(r.end, r.start + max_content_tokens)
    return list(r.ids[r.start : end])


@torch.inference_mode()
def residuals_for_prompt_group(
    model: Any,
    ff: Any,
    group: Sequence[Rendered],
    layers: Sequence[int],
    max_content_tokens: int | None = None,
    base: BasePrefix | None = None,
) -> list[Residuals]:
    """Residuals of the content tokens of transcripts that all share one prompt prefix.

    ``base``: a precomputed KV cache of a common start (the system prompt); used when the
    prefix begins with its ids, so that start is not recomputed for every prompt.
    """
    if not group:
        return []
    prefix = list(group[0].ids[: group[0].prefix_len])
    for r in group[1:]:
        if list(r.ids[: r.prefix_len]) != prefix:
            raise ValueError("residuals_for_prompt_group: transcripts do not share one prefix")
    contents = [_content(r, max_content_tokens) for r in group]
    width = max(len(c) for c in contents)
    stop = max(layers) + 1
    with capture(model, {layer: hook_name(layer) for layer in layers}) as captured:
        one = ff.new_cache(batch=1, capacity=len(prefix) + width)
        done = 0
        if base is not None and base.stop >= stop and 0 < len(base.ids) < len(prefix) \
                and prefix[: len(base.ids)] == list(base.ids):
            done = len(base.ids)
            for li in range(stop):
                one.k[li][:, :, :done] = base.cache.k[li][:, :, :done]
                one.v[li][:, :, :done] = base.cache.v[li][:, :, :done]
            one.lengths[:] = done
        ff.forward(torch.tensor([prefix[done:]], dtype=torch.long), one, stop_at_layer=stop)
        rows = ff.new_cache(batch=len(group), capacity=len(prefix) + width)
        for li in range(stop):
            rows.k[li][:, :, : len(prefix)] = one.k[li][:, :, : len(prefix)]
            rows.v[li][:, :, : len(prefix)] = one.v[li][:, :, : len(prefix)]
        rows.lengths[:] = len(prefix)
        toks = torch.zeros(len(group), width, dtype=torch.long)
        for i, c in enumerate(contents):
            toks[i, : len(c)] = torch.tensor(c, dtype=torch.long)
        captured.clear()
        ff.forward(toks, rows, stop_at_layer=stop)
    out = []
    for i, c in enumerate(contents):
        out.append(
            Residuals(
                ids=np.asarray(c, dtype=np.int32),
                layers={
                    layer: captured[layer][i, : len(c)].to(torch.float16).numpy().copy()
                    for layer in layers
                },
            )
        )
    return out


@torch.inference_mode()
def residuals_plain(
    model: Any, ff: Any, rendered: Rendered, layers: Sequence[int], max_content_tokens: int | None = None,
    keep_fp32: bool = False,
) -> Residuals:
    """One full forward of one transcript (no prefix sharing): the reference for the tests,
    and the run-time path of ``eval-probes --data`` (``keep_fp32``: no fp16 rounding)."""
    content = _content(rendered, max_content_tokens)
    ids = list(rendered.ids[: rendered.start]) + content
    with capture(model, {layer: hook_name(layer) for layer in layers}) as captured:
        cache = ff.new_cache(batch=1, capacity=len(ids))
        ff.forward(torch.tensor([ids], dtype=torch.long), cache, stop_at_layer=max(layers) + 1)
    s = rendered.start
    return Residuals(
        ids=np.asarray(content, dtype=np.int32),
        layers={
            layer: captured[layer][0, s : s + len(content)]
            .to(torch.float32 if keep_fp32 else torch.float16).numpy().copy()
            for layer in layers
        },
    )


@torch.inference_mode()
def residuals_batched(
    model: Any,
    ff: Any,
    batch: Sequence[Rendered],
    layers: Sequence[int],
    max_content_tokens: int | None,
    base: BasePrefix,
) -> list[Residuals]:
    """Whole transcripts (after the shared ``base`` start) as one right-padded batch.

    Every row starts with ``base.ids`` (checked); its KV is copied into each row, and the
    rest of each transcript runs in one forward. Causal attention: the padding at the end
    of shorter rows never reaches their real positions.
    """
    n_base = len(base.ids)
    stop = max(layers) + 1
    seqs = []
    for r in batch:
        if list(r.ids[:n_base]) != list(base.ids) or r.start <= n_base:
            raise ValueError("residuals_batched: every transcript must start with the base ids")
        seqs.append(list(r.ids[n_base : r.start]) + _content(r, max_content_tokens))
    width = max(len(s) for s in seqs)
    with capture(model, {layer: hook_name(layer) for layer in layers}) as captured:
        rows = ff.new_cache(batch=len(batch), capacity=n_base + width)
        for li in range(stop):
            rows.k[li][:, :, :n_base] = base.cache.k[li][:, :, :n_base]
            rows.v[li][:, :, :n_base] = base.cache.v[li][:, :, :n_base]
        rows.lengths[:] = n_base
        toks = torch.zeros(len(batch), width, dtype=torch.long)
        for i, s in enumerate(seqs):
            toks[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        ff.forward(toks, rows, stop_at_layer=stop)
    out = []
    for i, r in enumerate(batch):
        content = _content(r, max_content_tokens)
        lo = r.start - n_base
        out.append(
            Residuals(
                ids=np.asarray(content, dtype=np.int32),
                layers={
                    layer: captured[layer][i, lo : lo + len(content)].to(torch.float16).numpy().copy()
                    for layer in layers
                },
            )
        )
    return out
