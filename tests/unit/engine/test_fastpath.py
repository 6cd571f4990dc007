"""The fast path computes what TransformerLens computes, on a toy Llama-style model."""

import torch

from monitor.engine.fastpath import FastForward, fast_path_supported
from monitor.model.relayout import relayout_for_speed
from tests.toymodel import toy_model


def test_relayout_keeps_logits_bit_identical():
    tokens = torch.tensor([[3, 7, 1, 9, 4, 4, 12]])
    plain = toy_model()
    fast = relayout_for_speed(toy_model())
    assert torch.equal(plain(tokens), fast(tokens))
    # and the re-laid parameters are views whose transposes are contiguous (no copies)
    assert fast.blocks[0].mlp.W_gate.T.is_contiguous()


def test_fast_forward_matches_stock_forward_in_chunks():
    model = relayout_for_speed(toy_model())
    tokens = torch.tensor([[3, 7, 1, 9, 4, 4, 12, 5, 6]])
    ref = model(tokens)
    ff = FastForward(model)
    cache = ff.new_cache(capacity=4)  # forces the cache to grow
    parts = [ff.forward(tokens[:, :4], cache), ff.forward(tokens[:, 4:7], cache),
             ff.forward(tokens[:, 7:8], cache), ff.forward(tokens[:, 8:], cache)]
    logits = ff.logits(torch.cat(parts, dim=1))
    assert (logits - ref).abs().max().item() < 1e-4


def test_fast_path_declines_when_a_non_residual_hook_is_attached():
    model = toy_model()
    assert fast_path_supported(model)
    handle = model.hook_dict["blocks.0.attn.hook_pattern"].register_forward_hook(lambda *a: None)
    assert not fast_path_supported(model)
    handle.remove()
    assert fast_path_supported(model)
