"""The train-sae / sae-eval pipeline steps, shared by the CLI and tests.

1. :func:`prepare`: pre-tokenize the corpus once, cache eval + train activations
   (resumable shards under the workspace).
2. :func:`run_training`: train one SAE on the cached train activations (resumable),
   save the inference SAE and a run record.
3. :func:`evaluate_run`: metrics on the held-out slice + feature evidence.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import structlog
import torch

from classifiers.sae.cache import cache_split, load_shards, plan_shards
from classifiers.sae.corpus import Corpus, CorpusConfig, ensure_corpus
from classifiers.sae.train import TrainConfig
from classifiers.sae.workspace import Workspace, read_json, write_json

log = structlog.get_logger(__name__)


def prepare(lm: Any, datasets_root: Path, ws: Workspace, hooks: Sequence[str], train_tokens: int,
            shard_tokens: int = 50_000, bf16_train: bool = False) -> tuple[Corpus, list[Path], list[Path]]:
    """Corpus + activation shards. Eval shards always in fp32; train shards optionally
    under bf16 autocast (``bf16_train``)."""
    corpus = ensure_corpus(CorpusConfig(datasets_root=datasets_root), lm.tokenizer, ws.corpus_dir)
    special = lm.tokenizer.all_special_ids
    eval_paths = cache_split(lm.model, corpus, hooks, ws.acts_dir, "eval", special, shard_tokens=shard_tokens)
    train_paths = cache_split(lm.model, corpus, hooks, ws.acts_dir, "train", special, max_tokens=train_tokens,
                              shard_tokens=shard_tokens, bf16=bf16_train)
    return corpus, eval_paths, train_paths


def train_paths_for(corpus: Corpus, ws: Workspace, train_tokens: int, shard_tokens: int = 50_000) -> list[Path]:
    return [ws.acts_dir / p.name for p in plan_shards(corpus, "train", shard_tokens, train_tokens)]


def run_training(lm: Any, ws: Workspace, train_paths: Sequence[Path], hook: str,
                 cfg: TrainConfig, run_name: str, command: str, resume: bool = True) -> Path:
    from classifiers.sae.architectures import SAEShape
    from classifiers.sae.train import train_sae

    run_dir = ws.run_dir(run_name)
    record = read_json(run_dir / "record.json")
    if record and record.get("hook_name") != hook:
        raise ValueError(f"run {run_name!r} was started for {record.get('hook_name')}, not {hook}")
    acts = load_shards(train_paths, hook)["acts"]
    log.info("training_data", tokens=int(acts.shape[0]), shards=len(train_paths), hook=hook)
    commands = list(record.get("commands", []))
    commands.append(command)
    write_json(run_dir / "record.json", {
        "hook_name": hook, "train_config": asdict(cfg), "train_tokens": int(acts.shape[0]),
        "train_shards": [p.name for p in train_paths], "commands": commands, "status": "training",
        "model_spec": lm.spec, "weights_sha256": lm.weights_sha256,
    })
    shape = SAEShape(d_in=int(acts.shape[1]), d_sae=cfg.d_sae, k=cfg.k, l0_coefficient=cfg.l0_coefficient,
                     hook_name=hook, model_name=lm.spec)
    t0 = time.perf_counter()
    sae = train_sae(acts, cfg, shape, run_dir, resume=resume)
    sae.save_inference_model(str(run_dir / "sae"))
    rec = read_json(run_dir / "record.json")
    rec.update(status="done", train_seconds_last_session=round(time.perf_counter() - t0, 1))
    write_json(run_dir / "record.json", rec)
    log.info("training_done", run=str(run_dir))
    return run_dir


def eval_sequences(corpus: Corpus, max_tokens: int) -> list[torch.Tensor]:
    seqs, total = [], 0
    for i in corpus.split_docs("eval"):
        if total >= max_tokens:
            break
        seqs.append(corpus.doc(i))
        total += len(seqs[-1])
    return seqs


def evaluate_run(lm: Any, corpus: Corpus, run_dir: Path, eval_paths: Sequence[Path],
                 ce_tokens: int, feature_paths: Sequence[Path] = (), with_features: bool = False) -> dict[str, Any]:
    """Held-out metrics (+ feature evidence over eval + ``feature_paths`` tokens)."""
    from sae_lens import SAE

    from classifiers.sae.features import build_features_json, feature_stats
    from classifiers.sae.metrics import activation_metrics, ce_loss_recovered

    record = read_json(run_dir / "record.json")
    hook = record["hook_name"]
    sae = SAE.load_from_disk(str(run_dir / "sae"), device="cpu", dtype="float32")
    sae.eval()
    ev = load_shards(eval_paths, hook, with_index=True)
    t0 = time.perf_counter()
    am = activation_metrics(sae, ev["acts"])
    ce = ce_loss_recovered(lm.model, sae, hook, eval_sequences(corpus, ce_tokens), lm.tokenizer.all_special_ids)
    result: dict[str, Any] = {
        "hook_name": hook, "architecture": sae.cfg.architecture(), "d_sae": int(sae.cfg.d_sae),
        "train_tokens": record.get("train_tokens"), "epochs": record.get("train_config", {}).get("epochs"),
        "explained_variance": am.explained_variance, "ce_loss_recovered": ce.ce_loss_recovered,
        "l0": am.l0, "dead_fraction": am.dead_fraction, "mse": am.mse,
        "ce_clean": ce.ce_clean, "ce_sae": ce.ce_sae, "ce_zero_ablation": ce.ce_zero_ablation,
        "eval_tokens": am.n_tokens, "ce_tokens": ce.n_tokens,
    }
    features = None
    if with_features:
        parts = [ev] + ([load_shards(feature_paths, hook, with_index=True)] if feature_paths else [])
        acts = torch.cat([p["acts"] for p in parts])
        index = {k: torch.cat([p[k] for p in parts]) for k in ("doc", "pos", "token")}
        stats = feature_stats(sae, acts)
        result["dead_fraction_all_tokens"] = float((stats.fire_counts == 0).float().mean())
        result["feature_evidence_tokens"] = stats.n_tokens
        features = build_features_json(stats, index, lm.tokenizer, corpus, hook,
                                       source_note="held-out eval slice + cached training tokens")
    result["eval_seconds"] = round(time.perf_counter() - t0, 1)
    write_json(run_dir / "eval.json", result)
    log.info("eval_done", **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()})
    if features is not None:
        result["_features"] = features
    return result
