"""Weight formats of the fast path (fp32, bf16, int4): the products they compute, the
values taps see, and the refusals."""

import pytest
import torch

from monitor.engine import Engine, SamplingParams, Tap
from monitor.engine.fastpath import FastForward
from monitor.engine.weights import (
    GROUP,
    Int4Linear,
    WeightFormatError,
    check_format,
    linear,
    stored,
)
from tests.toymodel import ToyTokenizer, toy_model

WIDE = {"d_model": 64, "d_head": 16, "n_heads": 4, "d_mlp": 128, "d_vocab": 48}
TOKENS = torch.tensor([[3, 7, 1, 9, 4, 4, 12, 30, 41]])


def test_int4_reproduces_weights_that_already_are_4_bit_groups():
    # each group of 32 holds 16 affine levels (what Q4_1/Q4_K GGUF blocks store): int4
    # re-expresses them up to the bf16 rounding of scales, zeros and inputs
    torch.manual_seed(0)
    n, k = 96, 128
    scale = torch.rand(n, k // GROUP, 1) * 0.1 + 0.01
    low = torch.randn(n, k // GROUP, 1) * 0.2
    q = torch.randint(0, 16, (n, k // GROUP, GROUP)).float()
    q[..., 0], q[..., 1] = 0, 15  # every group spans its full range
    w = (low + scale * q).reshape(n, k)
    x = torch.randn(5, k)
    ref = x @ w.T
    got = linear(x, Int4Linear(w))
    assert got.dtype == torch.float32 and got.shape == ref.shape
    assert (got - ref).abs().max() <= 0.02 * ref.abs().max()


def test_int4_on_gaussian_weights_is_close_but_lossy():
    torch.manual_seed(1)
    w, x = torch.randn(64, 256), torch.randn(3, 256)
    ref = x @ w.T
    rel = (linear(x, Int4Linear(w)) - ref).norm() / ref.norm()
    assert 0.005 < rel < 0.15


def test_int4_refuses_widths_the_kernel_cannot_pack():
    with pytest.raises(WeightFormatError, match="multiple of 32"):
        Int4Linear(torch.randn(8, 40))


def test_bf16_keeps_the_fast_paths_logits_close():
    model = toy_model(**WIDE)
    ref, got = FastForward(model), FastForward(model, "bf16")
    with torch.inference_mode():
        a = ref.logits(ref.forward(TOKENS, ref.new_cache()))
        b = got.logits(got.forward(TOKENS, got.new_cache()))
    assert b.dtype == torch.float32
    assert 0 < (b - a).abs().max() <= 0.05 * a.abs().max()


def test_int4_forward_is_the_fp32_forward_of_its_dequantized_weights():
    """Every block linear runs the packed kernel on the weights it was given: the same
    forward in fp32 over the dequantized values agrees up to bf16 rounding of the inputs,
    while the original fp32 weights give visibly other logits (the toy's weights are
    Gaussian, not 4-bit groups, so int4 really changes them)."""
    model = toy_model(**WIDE)
    got, ref, orig = FastForward(model, "int4"), FastForward(model), FastForward(model)
    for lr, lg in zip(ref.layers, got.layers, strict=True):
        for key in ("wqkv", "wo", "wgi", "wout"):
            q = lg[key]
            assert isinstance(q, Int4Linear)
            k = q.packed.shape[1] * 2
            lr[key] = q(torch.eye(k)).T.contiguous()  # the dequantized [out, in] matrix
    with torch.inference_mode():
        a = ref.logits(ref.forward(TOKENS, ref.new_cache()))
        b = got.logits(got.forward(TOKENS, got.new_cache()))
        c = orig.logits(orig.forward(TOKENS, orig.new_cache()))
    scale = a.abs().max()
    assert (b - a).abs().max() <= 0.03 * scale
    assert (c - a).abs().max() > 3 * (b - a).abs().max()


@pytest.mark.parametrize("fmt", ["bf16", "int4"])
def test_taps_read_and_rewrite_fp32_residuals_in_every_format(fmt):
    model = toy_model(**WIDE)
    engine = Engine(model, ToyTokenizer(), weights=fmt)
    seen = []

    def read(x, call):
        seen.append(x.dtype)

    with Tap(model, "blocks.0.hook_resid_post", read) as tap:
        plain = engine.generation([3, 7, 1, 9], SamplingParams(max_tokens=6), taps=[tap])
        list(plain)
    assert seen and set(seen) == {torch.float32}
    with Tap(model, "blocks.0.hook_resid_post", lambda x, call: x * 0 + 3.0) as tap:
        pushed = engine.generation([3, 7, 1, 9], SamplingParams(max_tokens=6), taps=[tap])
        list(pushed)
    assert pushed.completion_ids != plain.completion_ids


def test_unknown_formats_and_gpu_low_bit_are_refused():
    with pytest.raises(WeightFormatError, match="unknown weight format 'int3'"):
        check_format("int3", "cpu")
    with pytest.raises(WeightFormatError, match="CPU kernels"):
        check_format("int4", "cuda")
    assert check_format("fp32", "cuda") == "fp32"
    assert isinstance(stored(torch.randn(4, 32), "fp32"), torch.Tensor)


def test_a_low_bit_format_without_the_fast_path_is_refused():
    model = toy_model(**WIDE)
    handle = model.hook_dict["blocks.0.attn.hook_pattern"].register_forward_hook(lambda *a: None)
    try:
        with pytest.raises(WeightFormatError, match="needs the fast path"):
            Engine(model, ToyTokenizer(), weights="int4")
    finally:
        handle.remove()


def test_the_daemon_setting_names_the_formats():
    from monitor.server.settings import SettingsError, load_settings

    assert load_settings(weights="int4").weights == "int4"
    with pytest.raises(SettingsError, match="weights"):
        load_settings(weights="int3")
