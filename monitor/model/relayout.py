"""Re-lay TransformerLens weights so the views its forward asks for are already contiguous.

TransformerLens 3.9 computes e.g. ``F.linear(x, self.W_gate.T.contiguous())`` and
``einops.rearrange(W_Q, "h m d -> (h d) m")`` on every forward; with its default layout
each of those copies the weight (~80% of a decode step's time on a 2-core CPU). Here each
such parameter becomes a strided *view* of a tensor stored in the layout the forward
wants: same values, other strides, so ``.contiguous()`` is a no-op and the rearrange is a
free reshape. Logits agree to fp32 rounding (BLAS may pick other kernels for the other
strides) and the greedy tokens are identical (tested). The tied unembedding becomes a view of
the embedding (one copy of the 49152x576 matrix instead of two).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformer_lens import HookedTransformer
from transformer_lens.components.grouped_query_attention import GroupedQueryAttention
from transformer_lens.components.mlps.gated_mlp import GatedMLP
from transformer_lens.components.mlps.mlp import MLP


def _as_view(module: Any, name: str, perm: tuple[int, ...]) -> None:
    """Store ``module.<name>`` as ``base.permute(inverse(perm))`` with ``base`` contiguous
    in the order ``perm`` (i.e. ``param.permute(perm)`` is contiguous)."""
    param = getattr(module, name)
    base = param.detach().permute(*perm).contiguous()
    inverse = tuple(perm.index(i) for i in range(len(perm)))
    new = nn.Parameter(base.permute(*inverse), requires_grad=param.requires_grad)
    module._parameters[name] = new


def relayout_for_speed(model: HookedTransformer, tie_unembed: bool = False) -> HookedTransformer:
    """Re-lay weights in place (see module docstring) and return the model."""
    blocks: Any = model.blocks
    for block in blocks:
        attn = block.attn
        if isinstance(attn, GroupedQueryAttention) and isinstance(block.mlp, GatedMLP):
            _fuse_llama_block(block)
            continue
        # simple_attn_linear: rearrange(w, "h m d -> (h d) m") wants [h, d, m] contiguous.
        _as_view(attn, "W_Q", (0, 2, 1))
        if isinstance(attn, GroupedQueryAttention):
            _as_view(attn, "_W_K", (0, 2, 1))
            _as_view(attn, "_W_V", (0, 2, 1))
        else:
            _as_view(attn, "W_K", (0, 2, 1))
            _as_view(attn, "W_V", (0, 2, 1))
        # rearrange(W_O, "h d m -> m (h d)").contiguous() wants [m, h, d] contiguous.
        _as_view(attn, "W_O", (2, 0, 1))
        mlp = block.mlp
        if isinstance(mlp, GatedMLP):
            _as_view(mlp, "W_gate", (1, 0))
            _as_view(mlp, "W_in", (1, 0))
            _as_view(mlp, "W_out", (1, 0))
        elif isinstance(mlp, MLP):
            _as_view(mlp, "W_in", (1, 0))
            _as_view(mlp, "W_out", (1, 0))
    unembed: Any = model.unembed
    if tie_unembed and torch.equal(unembed.W_U.detach(), model.embed.W_E.detach().T):
        unembed._parameters["W_U"] = nn.Parameter(model.embed.W_E.detach().T, requires_grad=False)
    else:
        _as_view(unembed, "W_U", (1, 0))
    return model


def _fuse_llama_block(block: Any) -> None:
    """Llama-style block: Q, K, V become row slices of one ``[(h+2kv)*d, d_model]`` matrix,
    gate and in row slices of one ``[2*d_mlp, d_model]`` matrix (the fast path runs one
    matmul for each group); every TransformerLens parameter is a view of those."""
    attn, mlp = block.attn, block.mlp
    h, d = attn.W_Q.shape[0], attn.W_Q.shape[2]
    kv = attn._W_K.shape[0]
    wq = attn.W_Q.detach().permute(0, 2, 1).reshape(h * d, -1)
    wk = attn._W_K.detach().permute(0, 2, 1).reshape(kv * d, -1)
    wv = attn._W_V.detach().permute(0, 2, 1).reshape(kv * d, -1)
    qkv = torch.cat([wq, wk, wv]).contiguous()
    d_model = qkv.shape[1]
    attn._parameters["W_Q"] = nn.Parameter(qkv[: h * d].view(h, d, d_model).permute(0, 2, 1), requires_grad=False)
    attn._parameters["_W_K"] = nn.Parameter(qkv[h * d : (h + kv) * d].view(kv, d, d_model).permute(0, 2, 1), requires_grad=False)
    attn._parameters["_W_V"] = nn.Parameter(qkv[(h + kv) * d :].view(kv, d, d_model).permute(0, 2, 1), requires_grad=False)
    attn._saeguard_wqkv = qkv
    _as_view(attn, "W_O", (2, 0, 1))
    gi = torch.cat([mlp.W_gate.detach().T, mlp.W_in.detach().T]).contiguous()
    d_mlp = gi.shape[0] // 2
    mlp._parameters["W_gate"] = nn.Parameter(gi[:d_mlp].T, requires_grad=False)
    mlp._parameters["W_in"] = nn.Parameter(gi[d_mlp:].T, requires_grad=False)
    mlp._saeguard_wgi = gi
    _as_view(mlp, "W_out", (1, 0))
