"""Probe commands: ``probe-cache`` (residual extraction), ``train-probes``, ``eval-probes``.

``probe-cache`` is the long job: run it under nohup with ``OMP_NUM_THREADS=1`` and a log
file; it prints one structlog line per chunk and resumes chunk by chunk when re-run.
``train-probes`` and ``eval-probes`` read that cache (and encode it with the pack's SAE).
"""

from __future__ import annotations

import argparse
import os
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
