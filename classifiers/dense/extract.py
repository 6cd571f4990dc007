"""Pooled residuals of chat transcripts: the mean and the last token of the assistant's
content span (the response tokens, never the prompt) at several layers, in one forward.

Transcripts are rendered with the chat template exactly as the guard sees a conversation
(:mod:`classifiers.features.render`), cut to ``max_content`` answer tokens, sorted by
length and right-padded into batches (padding sits after every position that is read, so
it changes nothing under causal attention). The forward is the engine's fast path
(:class:`monitor.engine.fastpath.FastForward`), optionally under bfloat16 autocast
(``bf16``: ~3x faster on this CPU; the guard runs fp32, so the study records which).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog
import torch

from classifiers.datasets.types import Transcript
from classifiers.features.render import render
from monitor.engine.fastpath import FastForward
from monitor.engine.hooks import capture

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Pooled:
    """Per-transcript features, row i = transcripts[i]."""

    mean: dict[int, np.ndarray]
    """layer -> [n, d_model] mean over the answer's tokens."""
    last: dict[int, np.ndarray]
    """layer -> [n, d_model] the answer's last token."""
    n_tokens: np.ndarray
    """[n] answer tokens read."""


def answer_spans(lm: Any, transcripts: Sequence[Transcript], layers: Sequence[int],
                 sink: Callable[[int, int, torch.Tensor], None], max_content: int = 160, bf16: bool = True,
                 batch_tokens: int = 2048, what: str = "") -> np.ndarray:
    """Run every transcript once and hand ``sink(i, layer, span)`` the residuals [n, d_model]
    (float32) of transcript ``i``'s answer tokens at each layer; returns the answer lengths
    read, [n]. The forward stops after the deepest layer asked for."""
    tok = lm.tokenizer
    rendered = []
    for t in transcripts:
        rt = render(tok, t.messages)
        end = min(rt.end, rt.start + max_content)
        rendered.append((list(rt.ids[:end]), rt.start, end))
    order = sorted(range(len(rendered)), key=lambda i: len(rendered[i][0]))
    ff = FastForward(lm.model)
    t0, done, n_batches = time.perf_counter(), 0, 0
    with capture(lm.model, {L: f"blocks.{L}.hook_resid_post" for L in layers}) as captured:
        i = 0
        while i < len(order):
            batch = [order[i]]
            while i + len(batch) < len(order) and len(rendered[order[i + len(batch)]][0]) * (len(batch) + 1) <= batch_tokens:
                batch.append(order[i + len(batch)])
            width = max(len(rendered[j][0]) for j in batch)
            toks = torch.zeros(len(batch), width, dtype=torch.long)
            for r, j in enumerate(batch):
                ids = rendered[j][0]
                toks[r, : len(ids)] = torch.tensor(ids)
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                ff.forward(toks, ff.new_cache(batch=len(batch), capacity=width), stop_at_layer=max(layers) + 1)
            for r, j in enumerate(batch):
                _, start, end = rendered[j]
                for L in layers:
                    sink(j, L, captured[L][r, start:end].float())
            i += len(batch)
            n_batches += 1
            done += sum(len(rendered[j][0]) for j in batch)
            if i == len(order) or n_batches % 10 == 0:
                log.info("answer_residuals", what=what, transcripts=i, of=len(order),
                         tok_per_s=round(done / (time.perf_counter() - t0)))
    return np.array([end - start for _, start, end in rendered], np.int32)


def pooled_residuals(lm: Any, transcripts: Sequence[Transcript], layers: Sequence[int], max_content: int = 160,
                     bf16: bool = True, batch_tokens: int = 2048, what: str = "") -> Pooled:
    d = lm.model.cfg.d_model
    mean = {L: np.zeros((len(transcripts), d), np.float32) for L in layers}
    last = {L: np.zeros((len(transcripts), d), np.float32) for L in layers}

    def sink(j: int, L: int, span: torch.Tensor) -> None:
        mean[L][j] = span.mean(0).numpy()
        last[L][j] = span[-1].numpy()

    n_tokens = answer_spans(lm, transcripts, layers, sink, max_content, bf16, batch_tokens, what)
    return Pooled(mean, last, n_tokens)


@dataclass(frozen=True)
class TokenResiduals:
    """Per-token residuals of the answers at one layer: transcript i's tokens are rows
    ``offsets[i]:offsets[i+1]`` of ``X`` (float16 to halve the memory; the guard scores
    float32, and the probe standardises, so the rounding is far below the probe's noise)."""

    layer: int
    X: np.ndarray
    offsets: np.ndarray


def token_residuals(lm: Any, transcripts: Sequence[Transcript], layer: int, max_content: int = 160,
                    bf16: bool = True, batch_tokens: int = 2048, what: str = "") -> TokenResiduals:
    spans: dict[int, np.ndarray] = {}

    def sink(j: int, L: int, span: torch.Tensor) -> None:  # noqa: ARG001 - one layer
        spans[j] = span.numpy().astype(np.float16)

    n_tokens = answer_spans(lm, transcripts, [layer], sink, max_content, bf16, batch_tokens, what)
    offsets = np.concatenate([[0], np.cumsum(n_tokens)]).astype(np.int64)
    X = np.concatenate([spans[j] for j in range(len(transcripts))]) if transcripts else np.zeros((0, 0), np.float16)
    return TokenResiduals(layer, X, offsets)
