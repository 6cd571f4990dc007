"""Weight formats of the fast path (fp32, bf16, int4): the products they compute, the
values taps see, and the refusals."""

import pytest
import torch

from monitor.engine import Engine, SamplingParams, Tap
from monitor.engine.fastpath import FastForward
from monitor.engine.weights import (
    GROUP,
    BF16Linear,
    Int4Linear,
    RowStack,
    WeightFormatError,
    check_format,
    linear,
    stored,
)
from monitor.model.gguf_file import STORED_AS
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


def _file(tmp_path, tensors):
    """A GGUF file holding ``{name: (raw uint8 rows, logical [rows, cols], GGML type)}``."""
    import gguf

    path = tmp_path / "m.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    for name, (raw, shape, qtype) in tensors.items():
        writer.add_tensor(name, raw, raw_dtype=qtype)  # logical shape from the byte shape
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(path)


def _q4k(rows, cols, seed):
    """Random Q4_K blocks (144 bytes per 256 weights) and their weights as gguf decodes them."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    b = rng.integers(0, 256, size=(rows, cols // 256, 144), dtype=np.uint8)
    b[..., 0:2] = np.full((rows, cols // 256, 1), 0.002, np.float16).view(np.uint8)  # d
    b[..., 2:4] = np.full((rows, cols // 256, 1), 0.004, np.float16).view(np.uint8)  # dmin
    raw = b.reshape(rows, -1)
    w = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType.Q4_K).reshape(rows, cols)
    return raw, torch.from_numpy(w.astype("float32"))


def test_int4_re_expresses_the_files_q4k_groups_exactly(tmp_path):
    import gguf

    from monitor.model.gguf_file import StoredMatrix, int4_grid

    raw, w = _q4k(48, 512, 0)
    path = _file(tmp_path, {"blk.0.attn_q.weight": (raw, (48, 512), gguf.GGMLQuantizationType.Q4_K)})
    m = StoredMatrix(path, "blk.0.attn_q.weight", "Q4_K")
    scale, low = int4_grid(m)
    assert scale.shape == low.shape == (48, 512 // GROUP)
    x = torch.randn(4, 512)
    ref = x @ w.T
    exact = stored(w, "int4", [(48, m)])
    requantized = Int4Linear(w)  # min/max per group: what int4 did before it read the file's grid
    assert isinstance(exact, Int4Linear) and exact.exact and not requantized.exact
    err_exact = (linear(x, exact) - ref).norm() / ref.norm()
    err_requant = (linear(x, requantized) - ref).norm() / ref.norm()
    assert err_exact < 0.01 < err_requant
    # weights that are not the file's (another layout) fall back to requantizing, never a wrong grid
    assert not Int4Linear(w.flip(0), (torch.from_numpy(scale), torch.from_numpy(low))).exact


def test_int4_keeps_the_rows_the_file_stored_wider_than_4_bits_in_bf16(tmp_path):
    import gguf

    from monitor.model.gguf_file import StoredMatrix

    # a fused Q/K/V whose V the file kept at Q6_K: Q and K are 4-bit on the file's grid, V
    # stays bf16, and the product is the parts' products side by side
    raw_q, wq = _q4k(64, 256, 1)
    raw_k, wk = _q4k(16, 256, 2)
    path = _file(tmp_path, {"q": (raw_q, (64, 256), gguf.GGMLQuantizationType.Q4_K),
                            "k": (raw_k, (16, 256), gguf.GGMLQuantizationType.Q4_K)})
    wv = torch.randn(16, 256) * 0.05
    w, x = torch.cat([wq, wk, wv]), torch.randn(4, 256)
    rows = [(64, StoredMatrix(path, "q", "Q4_K")), (16, StoredMatrix(path, "k", "Q4_K")),
            (16, StoredMatrix(path, "v", "Q6_K"))]
    mixed = stored(w, "int4", rows)
    assert isinstance(mixed, RowStack)
    assert [type(p) for p in mixed.parts] == [Int4Linear, BF16Linear]  # neighbours of one kind merge
    assert mixed.parts[0].exact
    ref = x @ w.T
    y = linear(x, mixed, torch.ones(96))
    assert y.shape == ref.shape and (y - 1 - ref).abs().max() < 0.02 * ref.abs().max()
    # no record (hf: models) gives one int4 product; a file's 8-bit matrix is bf16; bf16 is bf16
    assert isinstance(stored(w, "int4"), Int4Linear)
    assert isinstance(stored(w, "int4", [(80, None), (16, None)]), Int4Linear)
    assert isinstance(stored(w, "int4", [(96, StoredMatrix(path, "x", "Q8_0"))]), BF16Linear)
    assert isinstance(stored(w, "bf16", rows), BF16Linear)
    with pytest.raises(ValueError, match="do not cover"):
        stored(w, "int4", rows[:2])


def test_the_fast_path_reads_how_the_loader_says_each_block_matrix_was_stored():
    from monitor.model.gguf_file import StoredMatrix

    def kind(t):
        return StoredMatrix("unused.gguf", "t", t)

    model = toy_model(**WIDE)
    setattr(model.blocks[0].attn, STORED_AS, {"q": kind("IQ4_NL"), "k": kind("IQ4_NL"), "v": kind("Q6_K"),
                                              "o": kind("IQ4_NL")})
    setattr(model.blocks[0].mlp, STORED_AS, {"gate": kind("IQ4_NL"), "up": kind("IQ4_NL"), "down": kind("Q6_K")})
    ff = FastForward(model, "int4")
    first, second = ff.layers[0], ff.layers[1]
    assert isinstance(first["wqkv"], RowStack) and isinstance(first["wout"], BF16Linear)
    assert isinstance(first["wgi"], Int4Linear) and isinstance(first["wo"], Int4Linear)
    assert all(isinstance(second[k], Int4Linear) for k in ("wqkv", "wo", "wgi", "wout"))
    # the forward runs on the split matrices, and keeping those parts wide moves the logits
    # less than squeezing every matrix to 4 bits (the toy's weights are Gaussian)
    plain, squeezed = FastForward(model), FastForward(toy_model(**WIDE), "int4")
    with torch.inference_mode():
        a = plain.logits(plain.forward(TOKENS, plain.new_cache()))
        b = ff.logits(ff.forward(TOKENS, ff.new_cache()))
        c = squeezed.logits(squeezed.forward(TOKENS, squeezed.new_cache()))
    assert (b - a).norm() < (c - a).norm()


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
