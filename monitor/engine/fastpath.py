"""A lean forward pass over a Llama-style ``HookedTransformer``'s own weights.

TransformerLens' forward runs ~40 Python-level modules per layer; on a 2-core CPU that
overhead is larger than the matrix products of a 135M model. This module runs the same
computation (RMSNorm, rotary GQA attention, gated SiLU MLP) directly on the model's
parameters with a preallocated KV cache, and calls the model's residual-stream
``HookPoint`` modules (``hook_resid_pre``/``hook_resid_mid``/``hook_resid_post``) when
they have hooks, so taps and ``model.hooks(...)`` on those points work unchanged.

When a hook is attached anywhere else (attention patterns, MLP internals), or the model
is not Llama-style, :func:`fast_path_supported` says no and the caller falls back to the
stock TransformerLens forward. Parity with the stock forward is tested (logits within
1e-4, identical greedy tokens).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from monitor.engine.kvcache import KVCache
from monitor.engine.weights import WeightFormat, check_format, linear, stored
from monitor.model.gguf_file import STORED_AS

RESID_HOOKS = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post")


def fast_path_supported(model: Any) -> bool:
    cfg = model.cfg
    if not (
        cfg.normalization_type == "RMS"
        and cfg.positional_embedding_type == "rotary"
        and cfg.gated_mlp
        and cfg.act_fn == "silu"
        and not cfg.rotary_adjacent_pairs
        and cfg.rotary_dim == cfg.d_head
        and not getattr(cfg, "use_qk_norm", False)
        and not getattr(cfg, "parallel_attn_mlp", False)
        and getattr(cfg, "final_rms", False)
    ):
        return False
    return not _foreign_hooks(model)


def _foreign_hooks(model: Any) -> bool:
    """True when a hook is attached to a hook point the fast path does not call."""
    for name, hp in model.hook_dict.items():
        if (hp._forward_hooks or hp._backward_hooks) and not name.endswith(RESID_HOOKS):
            return True
    return False


class FastForward:
    """Runs a Llama-style HookedTransformer with a :class:`KVCache`.

    ``weights`` is the format of the linear layers' weights (:mod:`monitor.engine.weights`):
    the model's own fp32 parameters, or bf16 / int4 copies made here once."""

    def __init__(self, model: Any, weights: WeightFormat = "fp32"):
        self.model = model
        cfg = model.cfg
        self.cfg = cfg
        self.n_kv = cfg.n_key_value_heads or cfg.n_heads
        self.scale = 1.0 / (cfg.d_head ** 0.5) if cfg.use_attn_scale else 1.0
        dev = next(model.parameters()).device
        self.device = dev
        self.weights = check_format(weights, dev)
        # rotary tables, computed as TransformerLens does (float32, "(2 d)" layout)
        pos = torch.arange(cfg.n_ctx, dtype=torch.float32)
        dim = torch.arange(cfg.rotary_dim // 2, dtype=torch.float32)
        freq = cfg.rotary_base ** (dim / (cfg.rotary_dim / 2))
        freq = torch.cat([freq, freq])
        angles = pos[:, None] / freq[None, :]
        self.sin = torch.sin(angles).to(dev, cfg.dtype)
        self.cos = torch.cos(angles).to(dev, cfg.dtype)
        self.layers = [self._layer_weights(b) for b in model.blocks]
        # The unembedding is never 4-bit: it maps the residual straight to logits, and int4
        # there moved SmolLM2's greedy tokens within 3-7 tokens on 4 prompts. Under int4 it is
        # bf16 (as in the bf16 format, whose gates it passes): with Qwen's 151,936-token
        # vocabulary an fp32 unembedding is 0.93 GB read per token, more than the 1.5B's int4
        # blocks (README "Weight formats")
        self.unembed = stored(model.unembed.W_U.T, "bf16") if self.weights in ("bf16", "int4") else None

    def _layer_weights(self, block: Any) -> dict[str, Any]:
        a, m = block.attn, block.mlp
        h, kv, d = self.cfg.n_heads, self.n_kv, self.cfg.d_head
        k_w = a._W_K if hasattr(a, "_W_K") else a.W_K
        v_w = a._W_V if hasattr(a, "_W_V") else a.W_V
        k_b = a._b_K if hasattr(a, "_b_K") else a.b_K
        v_b = a._b_V if hasattr(a, "_b_V") else a.b_V
        # [out, in] matrices (views of the model's parameters where the layout allows)
        wq = a.W_Q.permute(0, 2, 1).reshape(h * d, -1)
        wk = k_w.permute(0, 2, 1).reshape(kv * d, -1)
        wv = v_w.permute(0, 2, 1).reshape(kv * d, -1)
        fmt = self.weights
        # how the model file stored each matrix (set by the loader for GGUF models; int4
        # keeps the parts it stored wider than 4 bits in bf16: weights.stored)
        sa, sm = getattr(a, STORED_AS, {}), getattr(m, STORED_AS, {})
        d_mlp = m.W_out.shape[0]
        with torch.no_grad():
            return {
                "block": block,
                "ln1": block.ln1.w, "ln2": block.ln2.w,
                # fused views made by relayout_for_speed; a concatenated copy otherwise
                "wqkv": stored(a._saeguard_wqkv if hasattr(a, "_saeguard_wqkv")
                               else torch.cat([wq, wk, wv]).contiguous(), fmt,
                               [(h * d, sa.get("q")), (kv * d, sa.get("k")), (kv * d, sa.get("v"))]),
                "bqkv": torch.cat([a.b_Q.reshape(-1), k_b.reshape(-1), v_b.reshape(-1)]),
                "wo": stored(a.W_O.permute(2, 0, 1).reshape(a.W_O.shape[2], -1), fmt,
                             [(a.W_O.shape[2], sa.get("o"))]),
                "bo": a.b_O,
                "wgi": stored(m._saeguard_wgi if hasattr(m, "_saeguard_wgi")
                              else torch.cat([m.W_gate.T, m.W_in.T]).contiguous(), fmt,
                              [(d_mlp, sm.get("gate")), (d_mlp, sm.get("up"))]),
                "b_in": m.b_in, "wout": stored(m.W_out.T, fmt, [(m.W_out.shape[1], sm.get("down"))]),
                "bout": m.b_out,
                "hooks": {n: getattr(block, n) for n in RESID_HOOKS},
            }

    def new_cache(self, batch: int = 1, capacity: int = 256) -> KVCache:
        return KVCache(self.cfg.n_layers, batch, self.n_kv, self.cfg.d_head, self.device, self.cfg.dtype, capacity)

    def _rms(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x / (x.pow(2).mean(-1, keepdim=True) + self.cfg.eps).sqrt() * w
        return out

    @staticmethod
    def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1] // 2
        rot = torch.cat([-x[..., n:], x[..., :n]], dim=-1)
        return x * cos + rot * sin

    @staticmethod
    def _maybe_hook(hp: Any, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = hp(x) if hp._forward_hooks else x
        return out

    def forward(self, tokens: torch.Tensor, cache: KVCache, stop_at_layer: int | None = None,
                rows: slice | None = None) -> torch.Tensor:
        """Append ``tokens`` [batch, new] to cache rows ``rows`` (default: the first
        ``batch`` rows) and return the residual after the last layer run,
        [batch, new, d_model] (apply :meth:`logits` for the next-token logits).

        Rows may have different cached lengths when ``new == 1`` (a continuous-batching
        decode step): each row then gets its own rotary position and attention mask.
        With ``new > 1`` all rows must have the same cached length (prefill)."""
        cfg = self.cfg
        B, P = tokens.shape
        rows = rows if rows is not None else slice(0, B)
        lengths = cache.lengths[rows]
        start = int(lengths[0])
        ragged = P == 1 and bool((lengths != start).any())
        if P > 1 and ragged:
            raise ValueError("prefill of several rows needs equal cached lengths")
        end = int(lengths.max()) + P
        cache.ensure(end)
        if ragged:
            pos = lengths.to(self.device)
            cos, sin = self.cos[pos][:, None, None], self.sin[pos][:, None, None]
            batch_idx = torch.arange(B, device=self.device)
            mask = (torch.arange(end, device=self.device)[None, :] <= pos[:, None])[:, None, None, :]
        else:
            cos = self.cos[start:end][None, None]
            sin = self.sin[start:end][None, None]
        x: torch.Tensor = self.model.embed.W_E[tokens]
        h, kv, d = cfg.n_heads, self.n_kv, cfg.d_head
        n_layers = cfg.n_layers if stop_at_layer is None else stop_at_layer
        for li in range(n_layers):
            L = self.layers[li]
            hooks = L["hooks"]
            x = self._maybe_hook(hooks["hook_resid_pre"], x)
            qkv = linear(self._rms(x, L["ln1"]), L["wqkv"], L["bqkv"])
            q = qkv[..., : h * d].view(B, P, h, d).transpose(1, 2)
            k = qkv[..., h * d : (h + kv) * d].view(B, P, kv, d).transpose(1, 2)
            v = qkv[..., (h + kv) * d :].view(B, P, kv, d).transpose(1, 2)
            q = self._rope(q, cos, sin)
            k = self._rope(k, cos, sin)
            k_rows, v_rows = cache.k[li][rows], cache.v[li][rows]
            if ragged:
                k_rows[batch_idx, :, pos] = k[:, :, 0]
                v_rows[batch_idx, :, pos] = v[:, :, 0]
                attn = F.scaled_dot_product_attention(q, k_rows[:, :, :end], v_rows[:, :, :end], attn_mask=mask,
                                                      scale=self.scale, enable_gqa=(kv != h))
            else:
                k_rows[:, :, start:end] = k
                v_rows[:, :, start:end] = v
                attn = F.scaled_dot_product_attention(
                    q, k_rows[:, :, :end], v_rows[:, :, :end], is_causal=(P > 1 and start == 0), scale=self.scale,
                    enable_gqa=(kv != h), attn_mask=None if (P == 1 or start == 0) else self._chunk_mask(start, end),
                )
            x = x + linear(attn.transpose(1, 2).reshape(B, P, h * d), L["wo"], L["bo"])
            x = self._maybe_hook(hooks["hook_resid_mid"], x)
            gi = linear(self._rms(x, L["ln2"]), L["wgi"])
            gate, lin = gi.chunk(2, dim=-1)
            x = x + linear(F.silu(gate) * lin + L["b_in"], L["wout"], L["bout"])
            x = self._maybe_hook(hooks["hook_resid_post"], x)
        cache.lengths[rows] += P
        return x

    def _chunk_mask(self, start: int, end: int) -> torch.Tensor:
        q_pos = torch.arange(start, end, device=self.device)[:, None]
        k_pos = torch.arange(end, device=self.device)[None, :]
        return k_pos <= q_pos

    def logits(self, resid: torch.Tensor) -> torch.Tensor:
        """Next-token logits from the final residual (final RMSNorm + unembed)."""
        x = self._rms(resid, self.model.ln_final.w)
        if self.unembed is not None:
            return linear(x, self.unembed, self.model.unembed.b_U)
        return F.linear(x, self.model.unembed.W_U.T, self.model.unembed.b_U)
