"""Weight formats of the fast path: how its linear layers store and multiply their weights.

- ``fp32`` (default): the model's own float32 parameters (views, no copy).
- ``bf16``: bfloat16 copies; inputs are cast to bf16 for the product, outputs back to fp32.
- ``int4``: weight-only 4-bit, groups of 32 along the input dimension (a scale and a zero
  per group, stored bf16), multiplied by torch's CPU kernel ``_weight_int4pack_mm_for_cpu``
  (input cast to bf16, the kernel's only input dtype). The blocks' linear layers only: the
  unembedding is bf16 (see FastForward). **int4 follows the model file** where the loader
  recorded how it stores each block matrix (the offline GGUF models,
  :data:`monitor.model.gguf_file.STORED_AS`):

  - a matrix the file stores as 4-bit affine groups of 32 (Q4_0, Q4_1, Q4_K) is re-expressed
    on the file's own grid (its per-group scale and minimum), so int4 multiplies exactly the
    weights the file holds, up to the bf16 rounding of scales, zeros and inputs (0.3%
    relative error on the 1.5B's Q4_K matrices, like bf16). Requantizing such a group
    between its own min and max instead (what int4 did before 2026-12-05) costs 4.4% on
    Q4_K, whose quantizer does not put every group's extremes on the grid's ends;
  - a matrix the file keeps wider than 4 bits (Q5_*, Q6_K, Q8_0, F16/BF16/F32: Q4_K_M files
    keep half the layers' ``ffn_down`` and ``attn_v`` at Q6_K) stays bf16 rather than being
    squeezed to 4 bits; a fused matrix (Q/K/V, gate/up) is split by rows into its int4 and
    bf16 parts (:class:`RowStack`).

  Without that record (``hf:`` models), or where the weights do not sit on the file's grid
  (a loader that permuted rows), each group is requantized between its min and max.

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

from monitor.model.gguf_file import StoredMatrix, int4_grid

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
    """``y = x @ W.T (+ b)`` with W quantized to 4 bits in groups of :data:`GROUP`.

    ``grid``: the model file's own (scale, low) per group, [out, in / GROUP] each, when it
    stores W as 4-bit groups (monitor.model.gguf_file.int4_grid). W is then re-expressed on
    that grid exactly (``q = (w - low) / scale``, integers in 0..15 up to fp32 rounding), so
    int4 multiplies what the file holds; without a grid, or when W does not sit on it, each
    group is requantized between its min and max (4.4% relative error on Q4_K weights)."""

    def __init__(self, w: torch.Tensor, grid: tuple[torch.Tensor, torch.Tensor] | None = None):
        w = w.detach().float()
        n, k = w.shape
        if k % GROUP or k % 32:
            raise WeightFormatError(f"int4 needs the input dimension to be a multiple of {GROUP}, got {k}")
        g = w.reshape(n, k // GROUP, GROUP)
        self.exact = False
        if grid is not None and grid[0].shape == (n, k // GROUP):
            scale = grid[0].float().unsqueeze(-1)
            lo = grid[1].float().unsqueeze(-1)
            qf = torch.where(scale > 0, (g - lo) / scale.clamp_min(1e-30), torch.zeros_like(g))
            q_round = qf.round()
            self.exact = bool((qf - q_round).abs().max() < 1e-2 and q_round.min() >= 0 and q_round.max() <= 15)
        if self.exact:
            q = q_round.to(torch.int32).reshape(n, k)
        else:
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


class RowStack:
    """A matrix stored in parts along its output rows (each part in its own format); the
    product is the parts' products concatenated."""

    def __init__(self, parts: list[BF16Linear | Int4Linear]):
        self.parts = parts

    def __call__(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        y = torch.cat([p(x) for p in self.parts], dim=-1)
        return y if bias is None else y + bias


Linear = torch.Tensor | BF16Linear | Int4Linear | RowStack


#: GGUF types at about 4 bits per weight or fewer: int4 re-expresses them; anything wider
#: (Q5_*, Q6_K, Q8_*, F16, BF16, F32) stays bf16 under the int4 format.
LOW_BIT_TYPES = frozenset({"Q4_0", "Q4_1", "Q4_K", "IQ4_NL", "IQ4_XS", "Q3_K", "Q2_K", "IQ3_XXS", "IQ3_S",
                           "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_S", "IQ1_M", "TQ1_0", "TQ2_0"})


def stored(w: torch.Tensor, fmt: WeightFormat, rows: list[tuple[int, StoredMatrix | None]] | None = None) -> Linear:
    """``w`` [out, in] in format ``fmt``.

    ``rows``: how the model file stored ``w``, as consecutive (row count, stored matrix)
    parts (a fused matrix has several); None entries or ``rows=None`` when unknown. Under
    int4 a part the file kept wider than 4 bits is bf16, and a part stored as 4-bit groups
    is re-expressed on the file's own grid (module docstring)."""
    if fmt == "bf16":
        return BF16Linear(w)
    if fmt != "int4":
        return w
    rows = rows or [(w.shape[0], None)]
    if sum(n for n, _ in rows) != w.shape[0]:
        raise ValueError(f"row parts {[n for n, _ in rows]} do not cover the matrix's {w.shape[0]} rows")
    # neighbours of one kind merge, so a matrix is at most as many products as kinds change
    merged: list[tuple[int, bool, list[StoredMatrix | None]]] = []
    for n, m in rows:
        low = m is None or m.type in LOW_BIT_TYPES
        if merged and merged[-1][1] == low:
            merged[-1] = (merged[-1][0] + n, low, [*merged[-1][2], m])
        else:
            merged.append((n, low, [m]))
    parts: list[BF16Linear | Int4Linear] = []
    start = 0
    for n, low, sources in merged:
        part = w[start:start + n]
        parts.append(Int4Linear(part, _grid(sources)) if low else BF16Linear(part))
        start += n
    return parts[0] if len(parts) == 1 else RowStack(parts)


def _grid(sources: list[StoredMatrix | None]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The file's 4-bit grid of stacked parts (None unless every part has one)."""
    grids = [None if m is None else int4_grid(m) for m in sources]
    if any(g is None for g in grids):
        return None
    return (torch.cat([torch.from_numpy(g[0]) for g in grids if g is not None]),
            torch.cat([torch.from_numpy(g[1]) for g in grids if g is not None]))


def linear(x: torch.Tensor, w: Linear, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ w.T + bias`` whatever the format of ``w``."""
    if isinstance(w, torch.Tensor):
        return F.linear(x, w, bias)
    return w(x, bias)
