"""Assemble the guard pack's SAE part from an evaluated run: ``sae/``, ``features.json``,
``manifest.json`` (probes/ is left alone: another step writes it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from classifiers.sae.export import base_manifest, save_pack_sae
from classifiers.sae.features import write_features_json
from classifiers.sae.workspace import read_json, write_json
from monitor.hashing import file_sha256

EVAL_KEYS = ("explained_variance", "ce_loss_recovered", "l0", "dead_fraction")
TABLE_KEYS = ("run", "hook_name", "architecture", "d_sae", "train_tokens", "epochs", "explained_variance",
              "ce_loss_recovered", "l0", "dead_fraction", "ce_tokens", "eval_tokens")


def write_pack(pack: Path, run_dir: Path, record: dict[str, Any], result: dict[str, Any],
               features: dict[str, Any] | None, corpus_meta: dict[str, Any], comparison: list[dict[str, Any]],
               lm: Any, eval_command: str) -> None:
    from sae_lens import SAE

    pack.mkdir(parents=True, exist_ok=True)
    sae = SAE.load_from_disk(str(run_dir / "sae"), device="cpu", dtype="float32")
    save_pack_sae(sae, pack / "sae")
    if features is not None:
        write_features_json(features, pack / "features.json")
    cfg = record["train_config"]
    manifest = base_manifest(
        model_spec=lm.spec, weights_sha256=lm.weights_sha256, hook_name=record["hook_name"],
        architecture=result["architecture"], d_sae=result["d_sae"], d_in=int(sae.cfg.d_in),
        training_tokens=int(record["train_tokens"]), train_config=cfg, corpus_meta=corpus_meta,
        commands=list(record.get("commands", [])) + [eval_command],
    )
    # the SAE weights are pinned like the model: load_pack refuses a file with another hash
    manifest["sae"]["weights_sha256"] = file_sha256(pack / "sae" / "sae_weights.safetensors")
    manifest["training"]["tokens_seen"] = int(round(record["train_tokens"] * float(cfg["epochs"])))
    manifest["sae_eval"] = {k: result[k] for k in EVAL_KEYS}
    manifest["sae_eval"].update({
        "definitions": {
            "explained_variance": "1 - sum||x - x_hat||^2 / sum||x - mean x||^2 over all held-out tokens (pooled)",
            "ce_loss_recovered": "(CE_zero_abl - CE_sae) / (CE_zero_abl - CE_clean), SAELens' definition; SAE "
                                 "reconstruction (error term dropped) or zeros at the hook on positions >= 1 "
                                 "that are not special tokens nor sink-like (norm > 10x median); those and "
                                 "position 0 are left intact in all runs",
            "l0": "mean active features per held-out token",
            "dead_fraction": "features with no activation on any held-out token",
        },
        "eval_tokens": result["eval_tokens"], "ce_tokens": result["ce_tokens"],
        "ce_clean": result["ce_clean"], "ce_sae": result["ce_sae"], "ce_zero_ablation": result["ce_zero_ablation"],
        "dead_fraction_all_tokens": result.get("dead_fraction_all_tokens"),
        "feature_evidence_tokens": result.get("feature_evidence_tokens"),
    })
    if comparison:
        manifest["architecture_comparison"] = [{k: c.get(k) for k in TABLE_KEYS} for c in comparison]
    old = read_json(pack / "manifest.json")
    # keep what other steps recorded; not "weights" (the format that passed the pack's
    # quality gates): a new SAE has not been gated, so the pack runs fp32 until it is
    for key in ("probes",):
        if key in old:
            manifest[key] = old[key]
    write_json(pack / "manifest.json", manifest)
