"""Write the SAE part of a guard pack: ``sae/`` (fp16 safetensors, SAELens format) and
the manifest (model, hook, architecture, corpus, versions, commands, metrics)."""

from __future__ import annotations

import importlib.metadata as md
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

MANIFEST_SCHEMA_VERSION = 1


def library_versions() -> dict[str, str]:
    out = {}
    for name in ("sae-lens", "transformer-lens", "torch", "transformers", "safetensors"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "absent"
    return out


def save_pack_sae(sae: Any, sae_dir: Path) -> None:
    """Save ``sae`` with SAELens' ``save_inference_model``, then store weights as fp16.

    ``cfg.json`` keeps ``dtype: float32`` so ``SAE.load_from_disk`` upcasts on load."""
    with tempfile.TemporaryDirectory() as tmp:
        save = getattr(sae, "save_inference_model", None) or sae.save_model  # training vs inference SAE
        save(tmp)
        weights = load_file(str(Path(tmp) / "sae_weights.safetensors"))
        cfg = json.loads((Path(tmp) / "cfg.json").read_text(encoding="utf-8"))
    cfg["dtype"] = "float32"
    if sae_dir.exists():
        shutil.rmtree(sae_dir)
    sae_dir.mkdir(parents=True)
    half = {k: (v.to(torch.float16) if k != "threshold" else v.float()).contiguous() for k, v in weights.items()}
    save_file(half, str(sae_dir / "sae_weights.safetensors"), metadata={"format": "pt"})
    (sae_dir / "cfg.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")


def base_manifest(
    *, model_spec: str, weights_sha256: str, hook_name: str, architecture: str, d_sae: int, d_in: int,
    training_tokens: int, train_config: dict[str, Any], corpus_meta: dict[str, Any], commands: list[str],
) -> dict[str, Any]:
    files = [{"path": f["path"], "sha256": f["sha256"], "documents": f["documents"]} for f in corpus_meta["files"]]
    return {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "model": {"id": model_spec, "weights_sha256": weights_sha256},
        "hook_name": hook_name,
        "sae": {"architecture": architecture, "d_in": d_in, "d_sae": d_sae, "dir": "sae",
                "weights_dtype": "float16", "activation_normalisation": "expected_average_only_in (folded into weights)",
                "excluded_positions": "position 0 (attention sink), special tokens, and sink-like rows whose "
                                      "residual norm exceeds 10x the median (classifiers.sae.cache.sink_like)"},
        "training": {"tokens_cached": training_tokens, "config": train_config},
        "corpus": {"files": files, "training_sets": corpus_meta.get("training_sets", []),
                   "tokens_by_source": corpus_meta.get("tokens_by_source", {}),
                   "config": corpus_meta.get("config", {}), "total_tokens": corpus_meta.get("total_tokens"),
                   "eval_tokens": corpus_meta.get("eval_tokens")},
        "library_versions": library_versions(),
        "commands": commands,
    }
