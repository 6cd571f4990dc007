"""Pooled residuals of the answer tokens (dense probes) on the real model: batching and
padding change nothing, and the pooled span is the assistant's content, not the prompt."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from classifiers.datasets.types import Transcript, chat_pair
from classifiers.dense.extract import pooled_residuals
from classifiers.features.render import render

pytestmark = pytest.mark.slow


def t(q: str, a: str, label: int = 0) -> Transcript:
    return Transcript(chat_pair(q, a), label, "deception", "test", q)


def test_pooled_answer_residuals_match_a_plain_forward_alone_or_batched(loaded_model):
    ts = [t("Name a colour.", "Blue."), t("Say hi.", "Hello there, how are you doing today?"),
          t("What is 2+2?", "It is four, of course.")]
    layers = [4, 9]
    batched = pooled_residuals(loaded_model, ts, layers, bf16=False, batch_tokens=4096)
    alone = pooled_residuals(loaded_model, ts, layers, bf16=False, batch_tokens=1)
    for i, tr in enumerate(ts):
        r = render(loaded_model.tokenizer, tr.messages)
        with torch.inference_mode():
            _, cache = loaded_model.model.run_with_cache(torch.tensor([list(r.ids)]),
                                                         names_filter=[f"blocks.{L}.hook_resid_post" for L in layers])
        assert batched.n_tokens[i] == r.n_content
        for L in layers:
            span = cache[f"blocks.{L}.hook_resid_post"][0, r.start:r.end]
            ref_mean, ref_last = span.mean(0).numpy(), span[-1].numpy()
            for got in (batched, alone):
                scale = np.abs(ref_mean).max()
                assert np.abs(got.mean[L][i] - ref_mean).max() <= 1e-3 * scale
                assert np.abs(got.last[L][i] - ref_last).max() <= 1e-3 * np.abs(ref_last).max()
