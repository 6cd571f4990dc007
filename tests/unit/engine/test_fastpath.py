"""The fast path computes what TransformerLens computes, on a toy Llama-style model."""

import torch

from monitor.engine.fastpath import FastForward, fast_path_supported
from monitor.model.relayout import relayout_for_speed
from tests.toymodel import toy_model


def test_relayout_keeps_the_logits_and_the_greedy_tokens():
    tokens = torch.tensor([[3, 7, 1, 9, 4, 4, 12]])
    plain = toy_model()
    fast = relayout_for_speed(toy_model())
    a, b = plain(tokens), fast(tokens)
    # Same values in other strides: BLAS may pick other kernels and summation orders for
    # the two layouts (AMD vs Intel, 1 vs 2 threads), so fp32 rounding differs at ~1e-6
    # of the logit scale; what a user sees, the next token at each position, is the same.
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5 * float(a.abs().max()))
    assert torch.equal(a.argmax(-1), b.argmax(-1))
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
