"""Build a ``HookedTransformer`` from a Llama- or Qwen2-architecture HF model.

SmolLM2 is not in TransformerLens' list of official models, and the Qwen2.5-Coder files
come from GGUF repacks, so each config is built by hand from the HF config (as
TransformerLens' own Qwen2 entry would: Q/K/V biases, grouped-query attention, the file's
rotary base and norm eps), with every weight-processing step off (``fold_ln``,
``center_writing_weights``, ``center_unembed``, ``fold_value_biases``): then
``blocks.L.hook_resid_post`` equals HF ``hidden_states[L+1]`` and an SAE trained on one
transfers to the other.
"""

from __future__ import annotations

from typing import Any

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights
from transformer_lens.pretrained.weight_conversions.qwen2 import convert_qwen2_weights

ARCHITECTURES = {
    "llama": ("LlamaForCausalLM", convert_llama_weights),
    "qwen2": ("Qwen2ForCausalLM", convert_qwen2_weights),
}
"""HF ``model_type`` -> (TransformerLens ``original_architecture``, weight conversion)."""


def llama_tl_config(hf_config: Any, device: torch.device, n_ctx: int | None = None,
                    model_name: str = "") -> HookedTransformerConfig:
    """TransformerLens config for a Llama or Qwen2 HF config (the two differ only in the
    Q/K/V biases, which the conversion carries; the config fields are the same)."""
    model_type = getattr(hf_config, "model_type", "llama")
    if model_type not in ARCHITECTURES:
        raise ValueError(f"unsupported architecture {model_type!r}: expected one of {sorted(ARCHITECTURES)}")
    rope = getattr(hf_config, "rope_parameters", None) or {}
    rope_theta = rope.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0))
    n_kv = hf_config.num_key_value_heads
    return HookedTransformerConfig(
        d_model=hf_config.hidden_size,
        d_head=hf_config.hidden_size // hf_config.num_attention_heads,
        n_heads=hf_config.num_attention_heads,
        d_mlp=hf_config.intermediate_size,
        n_layers=hf_config.num_hidden_layers,
        n_ctx=n_ctx or hf_config.max_position_embeddings,
        eps=hf_config.rms_norm_eps,
        d_vocab=hf_config.vocab_size,
        act_fn=hf_config.hidden_act,
        n_key_value_heads=n_kv if n_kv != hf_config.num_attention_heads else None,
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_adjacent_pairs=False,
        rotary_dim=hf_config.hidden_size // hf_config.num_attention_heads,
        rotary_base=rope_theta,
        final_rms=True,
        gated_mlp=True,
        original_architecture=ARCHITECTURES[model_type][0],
        tokenizer_prepends_bos=False,
        default_prepend_bos=False,
        dtype=torch.float32,
        device=str(device),
        init_weights=False,
        model_name=model_name or model_type,
    )


def hooked_from_hf(hf_model: Any, tokenizer: Any, device: torch.device, n_ctx: int | None = None,
                   model_name: str = "") -> HookedTransformer:
    """The HF model's weights in a HookedTransformer. **Consumes** ``hf_model``: each HF
    layer's weights are released (moved to the meta device) as soon as they are copied, so
    the peak memory is one model plus one layer, not two models (the 1.5B: ~8 GB instead
    of ~15 GB). Do not use ``hf_model`` afterwards."""
    cfg = llama_tl_config(hf_model.config, device, n_ctx=n_ctx, model_name=model_name)
    state = ARCHITECTURES[hf_model.config.model_type][1](hf_model, cfg)
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False, default_padding_side="left")
    own = model.state_dict(keep_vars=True)
    # Only the IGNORE masks / rotary buffers may be missing; any weight missing is a bug.
    missing = [k for k in own if k not in state and not k.endswith(("IGNORE", "mask", "rotary_sin", "rotary_cos"))]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise RuntimeError(f"weight conversion mismatch: missing={missing[:5]} unexpected={unexpected[:5]}")
    hf_layers = hf_model.model.layers
    for layer in [*range(cfg.n_layers), None]:  # layer by layer, then embed / final norm / unembed
        keys = [k for k in state if (k.startswith(f"blocks.{layer}.") if layer is not None
                                     else not k.startswith("blocks."))]
        for key in keys:
            src = state.pop(key)
            if own[key].shape != src.shape:
                raise RuntimeError(f"weight conversion mismatch: {key} is {tuple(src.shape)}, "
                                   f"expected {tuple(own[key].shape)}")
            with torch.no_grad():
                own[key].copy_(src)
            del src
        if layer is not None:
            hf_layers[layer].to("meta")  # frees this layer's HF weights
    hf_model.to("meta")
    torch.nn.Module.to(model, device)  # TL's own .to() prints; this does not
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
