"""A tiny Llama-style HookedTransformer (d_model 8) with seeded weights, and a toy
tokenizer, for unit tests of the engine and tap logic."""

from __future__ import annotations

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig


def toy_config(n_layers: int = 2, d_vocab: int = 32, n_ctx: int = 64, d_model: int = 8, d_head: int = 4,
               n_heads: int = 2, d_mlp: int = 16) -> HookedTransformerConfig:
    return HookedTransformerConfig(
        d_model=d_model, d_head=d_head, n_heads=n_heads, d_mlp=d_mlp, n_layers=n_layers, n_ctx=n_ctx,
        d_vocab=d_vocab, act_fn="silu", normalization_type="RMS", positional_embedding_type="rotary", rotary_dim=d_head,
        rotary_adjacent_pairs=False, gated_mlp=True, final_rms=True, n_key_value_heads=1,
        original_architecture="LlamaForCausalLM", default_prepend_bos=False, tokenizer_prepends_bos=False,
        dtype=torch.float32, device="cpu", init_weights=False, seed=0,
    )


def toy_model(seed: int = 0, **kw: int) -> HookedTransformer:
    torch.manual_seed(seed)
    model = HookedTransformer(toy_config(**kw), move_to_device=False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".w"):  # RMSNorm scales
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) * 0.5)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class ToyTokenizer:
    """Token i <-> letter chr(97 + i % 26); ids 0 and 1 are special (EOS, BOS)."""

    eos_token_id = 0
    chat_template = None

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(97 + i % 26) for i in ids if not (skip_special_tokens and i < 2))

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [2 + (ord(c) - 97) % 30 for c in text.lower() if c.isalpha()]}


def toy_sae(d_in: int = 8, d_sae: int = 16, seed: int = 1):  # noqa: ANN201 - a SAELens StandardSAE
    """A SAELens StandardSAE with fixed random weights for the toy model (d_model 8)."""
    from sae_lens import StandardSAE, StandardSAEConfig

    torch.manual_seed(seed)
    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, apply_b_dec_to_input=False))
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d_in, d_sae))
        sae.b_enc.zero_()
        sae.W_dec.copy_(torch.randn(d_sae, d_in) * 0.5)
        sae.b_dec.zero_()
    return sae
