"""Probe commands: ``probe-cache`` (residual extraction), ``train-probes``, ``eval-probes``.

``probe-cache`` is the long job: run it under nohup with ``OMP_NUM_THREADS=1`` and a log
file; it prints one structlog line per chunk and resumes chunk by chunk when re-run.
``train-probes`` and ``eval-probes`` read that cache (and encode it with the pack's SAE).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_PACK = "classifiers/packs/smollm2-135m-instruct"
DEFAULT_LAYERS = (6, 9, 12, 15)
DEFAULT_MAX_CONTENT = 192


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def _datasets_root(args: argparse.Namespace) -> Path:
    from classifiers.datasets import resolve_datasets_root

    return resolve_datasets_root(args.datasets_root, os.environ.get("SAEGUARD_DATASETS"))


def _cache_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--datasets-root", default=None,
                   help="shared datasets root (default ../shared/datasets; env SAEGUARD_DATASETS)")
    p.add_argument("--cache-dir", default=None, help="residual cache root (default <repo>/var/cache/resid)")
    p.add_argument("--layers", default=",".join(map(str, DEFAULT_LAYERS)),
                   help="comma-separated residual layers to cache (blocks.L.hook_resid_post)")
    p.add_argument("--max-content-tokens", type=int, default=DEFAULT_MAX_CONTENT,
                   help="assistant content tokens kept per transcript (longer answers are cut)")
    p.add_argument("--model", default="smollm2-135m-instruct", help="model spec")


def _layers(args: argparse.Namespace) -> list[int]:
    from monitor.cli import CliError

    try:
        layers = sorted({int(x) for x in str(args.layers).split(",") if x.strip()})
    except ValueError:
        raise CliError(f"--layers must be comma-separated integers, got {args.layers!r}") from None
    if not layers:
        raise CliError("--layers is empty")
    return layers


def _cache_root(args: argparse.Namespace) -> Path:
    return Path(args.cache_dir) if args.cache_dir else _repo_root() / "var" / "cache" / "resid"


def run_cache(args: argparse.Namespace) -> int:
    from classifiers.features.job import run_extraction
    from classifiers.features.plan import build_plan
    from classifiers.features.store import store_dir
    from monitor.model import load_model

    layers = _layers(args)
    lm = load_model(args.model)
    plans = build_plan(_datasets_root(args))
    out = store_dir(_cache_root(args), lm.weights_sha256, layers, args.max_content_tokens)
    run_extraction(lm, plans, out, layers, args.max_content_tokens, chunk_size=args.chunk_size)
    print(out)
    return 0


def register(subparsers: Any) -> None:
    c = subparsers.add_parser("probe-cache", help="cache per-token residuals of the probe datasets (resumable job)")
    _cache_args(c)
    c.add_argument("--chunk-size", type=int, default=100, help="transcripts per chunk file")
    c.set_defaults(func=run_cache)
    register_probe_commands(subparsers)


def _store(args: argparse.Namespace, pack: Path, layers: list[int]) -> Path:
    from classifiers.features.store import store_dir
    from monitor.cli import CliError
    from monitor.pack import PackError, load_pack

    sha = None
    if (pack / "manifest.json").is_file():
        try:
            recorded = load_pack(pack, with_sae=False, check_probes=False).manifest.model
        except PackError as exc:
            raise CliError(str(exc)) from None
        sha = recorded.weights_sha256 if recorded is not None else None
    if not sha:
        from monitor.model import load_model

        sha = load_model(args.model).weights_sha256
    return store_dir(_cache_root(args), sha, layers, args.max_content_tokens)


#: Hand-written part of REPORT.md (framing, attempts outside the pipeline, conclusions), kept
#: in the output directory beside it so that re-running train-probes keeps it.
NOTES_FILE = "NOTES.md"


def _notes(args: argparse.Namespace, out_dir: Path) -> str:
    """``--notes FILE``, else ``<out>/NOTES.md`` when present, else nothing."""
    from monitor.cli import CliError

    path = Path(args.notes) if args.notes else out_dir / NOTES_FILE
    if not path.is_file():
        if args.notes:
            raise CliError(f"--notes {path}: no such file")
        return ""
    return path.read_text(encoding="utf-8")


def run_train(args: argparse.Namespace) -> int:
    from classifiers.datasets import CONCEPTS
    from classifiers.probes.commands import ProbeCommandError, train_all
    from monitor.cli import CliError

    pack = Path(args.pack)
    sae_dir = Path(args.sae) if args.sae else pack / "sae"
    if not (sae_dir / "cfg.json").is_file():
        raise CliError(f"no SAE at {sae_dir} (cfg.json missing); pass --sae DIR or train the pack's SAE first")
    layers = _layers(args)
    concepts = args.concept or list(CONCEPTS)
    out_dir = Path(args.out) if args.out else pack / "probes"
    notes = _notes(args, out_dir)
    header = {"command": "saeguard " + " ".join(sys.argv[1:]),
              "max_content_tokens": args.max_content_tokens}
    try:
        outcomes = train_all(pack, sae_dir, _store(args, pack, layers), _datasets_root(args), out_dir,
                             concepts, layers, args.quick, notes, header)
    except ProbeCommandError as exc:
        raise CliError(str(exc)) from exc
    for o in outcomes:
        lo = o.record.metrics["leave_one_source_out"]
        print(o.record.name, "window", o.calibration.reading.name, "thresholds", o.calibration.thresholds,
              "held-out AUROC", {k: round((v.get("runtime") or v["pooled"])["auroc"] or 0, 3) for k, v in lo.items()})
    print(out_dir)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import json

    from classifiers.probes.commands import ProbeCommandError, external_eval
    from classifiers.probes.external import ExternalDataError
    from monitor.cli import CliError

    pack = Path(args.pack)
    if not args.data:
        return _eval_cached(args, pack)
    try:
        result = external_eval(pack, Path(args.data), args.concept, args.model, args.allow_sae_mismatch)
    except (ProbeCommandError, ExternalDataError) as exc:
        raise CliError(str(exc)) from exc
    if not args.json:
        for name, r in result.items():
            print(f"{name}: n={r['n']} auroc={r['auroc']} (95% interval {r['auroc_ci95']}) "
                  f"auprc={r['auprc']} tpr@1%fpr={r['tpr_at_1pct_fpr']}")
    final = next(iter(result.values())) if len(result) == 1 else result
    print(json.dumps(final))
    return 0


def _eval_cached(args: argparse.Namespace, pack: Path) -> int:
    from classifiers.probes.commands import ProbeCommandError
    from classifiers.probes.evaluate import evaluate_cached
    from monitor.cli import CliError

    layers = _layers(args)
    try:
        text = evaluate_cached(pack, _store(args, pack, layers), _datasets_root(args), args.concept,
                               args.allow_sae_mismatch)
    except ProbeCommandError as exc:
        raise CliError(str(exc)) from exc
    print(text)
    return 0


def register_probe_commands(subparsers: Any) -> None:
    t = subparsers.add_parser("train-probes", help="train, calibrate and evaluate the concept probes (pack probes/)")
    _cache_args(t)
    t.add_argument("--pack", default=DEFAULT_PACK, help="guard pack directory")
    t.add_argument("--sae", default=None, help="SAE directory (default <pack>/sae)")
    t.add_argument("--out", default=None, help="output directory (default <pack>/probes)")
    t.add_argument("--concept", action="append", default=None, help="concept(s) to train (default: all four)")
    t.add_argument("--quick", action="store_true", help="only the shipped SAE probe and the two baselines (no research grid)")
    t.add_argument("--notes", default=None, help="markdown file appended to REPORT.md (default: <out>/NOTES.md when present)")
    t.set_defaults(func=run_train)

    e = subparsers.add_parser("eval-probes", help="evaluate the pack's probes (cached sets, or --data FILE.jsonl)")
    _cache_args(e)
    e.add_argument("--pack", default=DEFAULT_PACK, help="guard pack directory")
    e.add_argument("--data", default=None, help="JSONL of {messages, label[, concept]} to score as the run time would")
    e.add_argument("--concept", default=None, help="concept for lines without one (and the only one scored)")
    e.add_argument("--json", action="store_true", help="only print the JSON result line")
    e.add_argument("--allow-sae-mismatch", action="store_true",
                   help="score even if probes.json was trained on another SAE than the pack's")
    e.set_defaults(func=run_eval)
