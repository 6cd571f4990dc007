"""SAE commands: ``train-sae``, ``sae-eval``, ``features show`` and ``features label``.

Long jobs: run ``train-sae`` under nohup with ``OMP_NUM_THREADS=1`` and a log file; it
prints structlog progress lines, checkpoints, and resumes from the last checkpoint when
re-run with the same ``--run`` (the activation cache resumes shard by shard too).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

DEFAULT_PACK = "classifiers/packs/smollm2-135m-instruct"
DEFAULT_HOOK = "blocks.15.hook_resid_post"


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--work-dir", default=None,
                   help="corpus/cache/runs directory (default: <repo>/var/sae for the default model, "
                        "<repo>/var/sae/<model> for another: the corpus is tokenized per model)")
    p.add_argument("--datasets-root", default=None,
                   help="shared datasets root (default: ../shared/datasets relative to the repo)")
    p.add_argument("--model", default="smollm2-135m-instruct", help="model spec")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: leave a core free)")
    p.add_argument("--train-tokens", type=int, default=1_000_000,
                   help="training tokens to cache (prefix of the shuffled corpus, whole shards)")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("train-sae", help="train an SAE on the local corpus (resumable background job)")
    _common(p)
    p.add_argument("--hook", action="append", default=None,
                   help=f"hook point (repeat to cache several at once; trains on the first). Default {DEFAULT_HOOK}")
    p.add_argument("--arch", default="topk", help="topk | jumprelu | standard")
    p.add_argument("--d-sae", type=int, default=4608)
    p.add_argument("--k", type=int, default=32, help="TopK k / JumpReLU target L0")
    p.add_argument("--l0-coefficient", type=float, default=1.0)
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints")
    p.add_argument("--dead-window-tokens", type=int, default=None,
                   help="a feature silent for this many training tokens is dead and TopK's auxiliary loss "
                        "revives it (default: a quarter of the run, 50-1000 batches)")
    p.add_argument("--run", required=True, help="run name (directory under <work-dir>/runs); reuse it to resume")
    p.add_argument("--no-resume", action="store_true", help="start over even if checkpoints exist")
    p.add_argument("--cache-only", action="store_true", help="only pre-tokenize and cache activations")
    p.add_argument("--fp32-cache", action="store_true",
                   help="cache training activations in fp32 (default: bf16 autocast forward, ~1.7x faster)")
    p.add_argument("--fp32-train", action="store_true", help="no bf16 autocast in SAE training")
    p.set_defaults(func=run_train)

    e = subparsers.add_parser("sae-eval", help="evaluate a trained SAE run on the held-out slice; optionally write the pack")
    _common(e)
    e.add_argument("--run", required=True, help="run name to evaluate")
    e.add_argument("--ce-tokens", type=int, default=20_000, help="held-out tokens for CE-loss recovered")
    e.add_argument("--feature-tokens", type=int, default=400_000,
                   help="tokens for feature evidence: the held-out slice plus training shards up to this many")
    e.add_argument("--pack", default=None, help="write sae/, features.json and manifest.json into this pack dir")
    e.add_argument("--compare", nargs="*", default=[], help="other evaluated runs to tabulate in the manifest")
    e.set_defaults(func=run_eval)

    f = subparsers.add_parser("features", help="inspect SAE features of a guard pack")
    fsub = f.add_subparsers(dest="features_cmd", metavar="ACTION")
    s = fsub.add_parser("show", help="density and top-activating contexts of a feature")
    s.add_argument("id", type=int, help="feature id")
    s.add_argument("--pack", default=DEFAULT_PACK, help=f"guard pack directory (default {DEFAULT_PACK})")
    s.set_defaults(func=run_features_show)
    lab = fsub.add_parser("label", help="fill empty feature labels from their top-activating tokens (no model run)")
    lab.add_argument("--pack", default=DEFAULT_PACK, help=f"guard pack directory (default {DEFAULT_PACK})")
    lab.set_defaults(func=run_features_label)


def default_work_dir(model: str) -> Path:
    """``var/sae`` for the default model (where its runs have always been), else
    ``var/sae/<model>``: each model tokenizes the corpus and caches activations its own way."""
    from monitor.model.registry import DEFAULT_SPEC

    base = _repo_root() / "var" / "sae"
    return base if model == DEFAULT_SPEC else base / model.replace(":", "_").replace("/", "_")


def _command_line() -> str:
    return "saeguard " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _setup(args: argparse.Namespace) -> tuple[Any, Any, Path]:
    import os

    import torch

    from classifiers.datasets import resolve_datasets_root
    from classifiers.sae.workspace import Workspace
    from monitor.cli import CliError
    from monitor.model import ModelSpecError, load_model

    torch.set_num_threads(max(1, args.threads))
    root = resolve_datasets_root(args.datasets_root, os.environ.get("SAEGUARD_DATASETS"))
    if not root.is_dir():
        raise CliError(f"datasets root not found: {root} (pass --datasets-root)")
    ws = Workspace(Path(args.work_dir) if args.work_dir else default_work_dir(args.model))
    try:
        lm = load_model(args.model)
    except ModelSpecError as exc:
        raise CliError(str(exc)) from None
    return lm, ws, root


def run_train(args: argparse.Namespace) -> int:
    import gc
    from types import SimpleNamespace

    from classifiers.sae.cache import hook_layer
    from classifiers.sae.pipeline import prepare, run_training
    from classifiers.sae.train import TrainConfig
    from monitor.cli import CliError

    hooks = args.hook or [DEFAULT_HOOK]
    try:
        for h in hooks:
            hook_layer(h)
        cfg = TrainConfig(architecture=args.arch, d_sae=args.d_sae, k=args.k, l0_coefficient=args.l0_coefficient,
                          epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                          checkpoint_every=args.checkpoint_every, autocast=not args.fp32_train,
                          dead_window_tokens=args.dead_window_tokens)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    lm, ws, root = _setup(args)
    corpus, _, train_paths = prepare(lm, root, ws, hooks, args.train_tokens, bf16_train=not args.fp32_cache)
    if args.cache_only:
        return 0
    # Training reads the cache only: the run record needs the model's name and hash, not its
    # weights (7 GB for the 1.5B), so give that memory back before the SAE starts.
    lm = SimpleNamespace(spec=lm.spec, weights_sha256=lm.weights_sha256)
    gc.collect()
    try:
        run_dir = run_training(lm, ws, train_paths, hooks[0], cfg, args.run, _command_line(),
                               resume=not args.no_resume)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(f"trained SAE saved to {run_dir / 'sae'}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from classifiers.sae.pipeline import evaluate_run, prepare
    from classifiers.sae.workspace import read_json
    from monitor.cli import CliError

    lm, ws, root = _setup(args)
    run_dir = ws.run_dir(args.run)
    record = read_json(run_dir / "record.json")
    if not (run_dir / "sae" / "cfg.json").is_file() or not record:
        raise CliError(f"run {args.run!r} has no trained SAE under {run_dir} (run train-sae first)")
    hook = record["hook_name"]
    corpus, eval_paths, _ = prepare(lm, root, ws, [hook], 0)
    n_train_shards = max(0, -(-(args.feature_tokens - corpus.split_tokens("eval")) // 50_000))
    feature_paths = [ws.acts_dir / n for n in record.get("train_shards", [])[:n_train_shards]] if args.pack else []
    result = evaluate_run(lm, corpus, run_dir, eval_paths, args.ce_tokens, feature_paths,
                          with_features=bool(args.pack))
    features = result.pop("_features", None)
    print(_format_metrics(args.run, result))
    if args.pack:
        from classifiers.sae.pack_writer import write_pack

        comparison = []
        for name in args.compare:
            other = read_json(ws.run_dir(name) / "eval.json")
            if not other:
                raise CliError(f"run {name!r} has not been evaluated (run sae-eval --run {name})")
            comparison.append(dict(other, run=name))
        pack = Path(args.pack)
        meta = dict(corpus.meta, tokens_by_source=corpus.tokens_by_source())
        write_pack(pack, run_dir, record, result, features, meta, comparison, lm,
                   eval_command=_command_line())
        print(f"guard pack written to {pack}")
    return 0


def _format_metrics(run: str, r: dict[str, Any]) -> str:
    return (f"{run}: {r['hook_name']} {r['architecture']} d_sae={r['d_sae']}  EV={r['explained_variance']:.4f}  "
            f"CE_recovered={r['ce_loss_recovered']:.4f}  L0={r['l0']:.1f}  dead={r['dead_fraction']:.4f}  "
            f"(eval {r['eval_tokens']} tokens, CE on {r['ce_tokens']})")


def run_features_show(args: argparse.Namespace) -> int:
    from classifiers.sae.features import format_feature
    from monitor.cli import CliError
    from monitor.pack import PackError, load_pack

    try:
        pack = load_pack(args.pack, with_sae=False, check_probes=False)  # shows SAE evidence only
    except PackError as exc:
        raise CliError(str(exc)) from None
    d_sae = int(pack.sae_cfg.get("d_sae") or pack.manifest.sae.get("d_sae", 0))
    if args.id < 0 or (d_sae and args.id >= d_sae):
        raise CliError(f"feature id {args.id} out of range (0..{d_sae - 1})")
    if not pack.features:
        raise CliError(f"{args.pack} has no features.json (run sae-eval --pack {args.pack})")
    for line in format_feature(args.id, pack.feature(args.id), pack.features.get("n_tokens")):
        print(line)
    return 0


LABEL_COMMAND = "saeguard features label --pack {pack}"


def run_features_label(args: argparse.Namespace) -> int:
    """Label every unlabelled feature of ``features.json`` from its stored top contexts, copy
    the labels into the probes' evidence, and record the command in the manifest."""
    import json

    from classifiers.sae.features import label_features, write_features_json
    from monitor.cli import CliError

    pack = Path(args.pack)
    path = pack / "features.json"
    if not path.is_file():
        raise CliError(f"{pack} has no features.json (run sae-eval --pack {pack})")
    data = json.loads(path.read_text(encoding="utf-8"))
    written, kept = label_features(data)
    write_features_json(data, path)
    refreshed = 0
    if (pack / "probes" / "probes.json").is_file():
        from classifiers.probes.ship import refresh_evidence

        refreshed = refresh_evidence(pack / "probes", data)
    manifest_path = pack / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        command = LABEL_COMMAND.format(pack=args.pack)
        if command not in manifest.setdefault("commands", []):
            manifest["commands"].append(command)
            from classifiers.sae.workspace import write_json

            write_json(manifest_path, manifest)
    print(f"{path}: {written} automatic labels, {kept} person labels kept; "
          f"{refreshed} labelled features in the probes' evidence")
    return 0
