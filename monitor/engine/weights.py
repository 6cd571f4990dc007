"""Weight formats of the fast path: how its linear layers store and multiply their weights.

- ``fp32`` (default): the model's own float32 parameters (views, no copy).
- ``bf16``: bfloat16 copies; inputs are cast to bf16 for the product, outputs back to fp32.
- ``int4``: weight-only 4-bit, asymmetric groups of 32 along the input dimension (a
  scale and a zero per group, stored bf16), multiplied by torch's CPU kernel
  ``_weight_int4pack_mm_for_cpu`` (input cast to bf16, the kernel's only input dtype).
  The blocks' linear layers only: the unembedding is bf16 (see FastForward). The GGUF
  files saeguard loads store most block weights at 4-5 bits in groups of 32 (Q4_1, Q4_K,
  Q5_0), so the int4 groups re-express them closely rather than quantizing fp16 weights.

Only the matrix products change. Everything between them (RMSNorm, rotary, attention, the
residual stream, every ``hook_resid_*`` a tap reads or rewrites, the KV cache) stays in the
model's dtype (fp32), so the SAE, the probes, clamping and steering see the same kind of
values in every format; how far the values move is measured by the quality gates
(``ops/bench/weights_quality.py``, README "Weight formats").

``int8`` is not offered: torch's int8 weight-only CPU kernel (``_weight_int8pack_mm``) is
~3x slower than fp32 at batch 1 and ~27x at batch 64 on this CPU (ops/bench/weights_dtype.py).
The low-bit kernels are CPU kernels: on CUDA a format other than fp32 is refused.
The fp32 parameters stay in the model (TransformerLens' stock forward uses them when a
hook outside the residual stream is attached), so a low-bit format adds memory here; it
buys speed, not footprint.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F

WeightFormat = Literal["fp32", "bf16", "int4"]
FORMATS: tuple[str, ...] = get_args(WeightFormat)
GROUP = 32
"""int4 group size along the input dimension."""


class WeightFormatError(ValueError):
    """A format this build or device cannot run."""


def check_format(fmt: str, device: torch.device | str) -> WeightFormat:
    if fmt not in FORMATS:
        raise WeightFormatError(f"unknown weight format {fmt!r}; expected one of {list(FORMATS)}")
    if fmt != "fp32" and torch.device(device).type != "cpu":
        raise WeightFormatError(f"weight format {fmt!r} uses CPU kernels; on {device} use fp32")
    return fmt  # type: ignore[return-value]


class BF16Linear:
    """``y = x @ W.T (+ b)`` with W stored in bf16."""

    def __init__(self, w: torch.Tensor):
        self.w = w.detach().to(torch.bfloat16).contiguous()

    def __call__(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        y = F.linear(x.to(torch.bfloat16), self.w).to(x.dtype)
        return y if bias is None else y + bias


class Int4Linear:
    """``y = x @ W.T (+ b)`` with W quantized to 4 bits in groups of :data:`GROUP`."""

    def __init__(self, w: torch.Tensor):
        w = w.detach().float()
        n, k = w.shape
        if k % GROUP or k % 32:
            raise WeightFormatError(f"int4 needs the input dimension to be a multiple of {GROUP}, got {k}")
        g = w.reshape(n, k // GROUP, GROUP)
        lo, hi = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
        scale = ((hi - lo) / 15).clamp_min(1e-10)
        q = ((g - lo) / scale).round().clamp(0, 15).to(torch.int32).reshape(n, k)
        # the kernel dequantizes (q - 8) * scale + zero, so zero = lo + 8 * scale
        self.scales_zeros = torch.stack([scale.squeeze(-1).T, (lo + 8 * scale).squeeze(-1).T], -1) \
            .to(torch.bfloat16).contiguous()
        self.packed = torch._convert_weight_to_int4pack_for_cpu(q.contiguous(), 2)
        self.out_features = n

    def __call__(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
        y = torch._weight_int4pack_mm_for_cpu(flat, self.packed, GROUP, self.scales_zeros)
        y = y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
        return y if bias is None else y + bias


Linear = torch.Tensor | BF16Linear | Int4Linear


def stored(w: torch.Tensor, fmt: WeightFormat) -> Linear:
    """``w`` [out, in] in format ``fmt``."""
    if fmt == "bf16":
        return BF16Linear(w)
    if fmt == "int4":
        return Int4Linear(w)
    return w


def linear(x: torch.Tensor, w: Linear, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ w.T + bias`` whatever the format of ``w``."""
    if isinstance(w, torch.Tensor):
        return F.linear(x, w, bias)
    return w(x, bias)
