"""``saeguard serve``: run the sidecar daemon (settings: defaults < --config file < SAEGUARD_* env < flags)."""

from __future__ import annotations

import argparse
from typing import Any

FLAG_FIELDS = {
    "host": "host", "port": "port", "model": "model", "model_id": "model_id", "device": "device",
    "threads": "threads", "weights": "weights", "pack": "pack_dir", "policy": "policy", "redis": "redis_url", "stream": "stream",
    "spool_dir": "spool_dir", "auth_token": "auth_token", "max_prompt_tokens": "max_prompt_tokens",
    "max_tokens_cap": "max_tokens_cap", "shutdown_timeout": "shutdown_timeout_s", "max_batch": "max_batch",
    "max_queue": "max_queue", "dedup_ttl": "dedup_ttl_s", "redis_wait_replicas": "redis_wait_replicas",
    "prefill_chunk": "prefill_chunk_tokens",
}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("serve", help="run the sidecar daemon (OpenAI-compatible HTTP API)")
    p.add_argument("--config", metavar="FILE", help="settings file (.yaml/.yml/.toml)")
    p.add_argument("--host", help="bind address (default 127.0.0.1; non-loopback needs --auth-token)")
    p.add_argument("--port", type=int, help="bind port (default 8765)")
    p.add_argument("--model", help="model spec (default smollm2-135m-instruct)")
    p.add_argument("--model-id", help="id clients send as `model` (default: the model spec)")
    p.add_argument("--device", help="auto|cpu|cuda|cuda:N")
    p.add_argument("--threads", type=int, help="torch CPU threads (default 2)")
    p.add_argument("--weights", choices=["auto", "fp32", "bf16", "int4"],
                   help="the fast path's weight format (default auto: the fastest format that passes the pack's "
                        "quality gates on a CPU, fp32 on CUDA; README \"Weight formats\")")
    p.add_argument("--pack", metavar="DIR", help="guard pack (default classifiers/packs/smollm2-135m-instruct)")
    p.add_argument("--policy", metavar="FILE", help="policy file (default policies/default.yaml)")
    p.add_argument("--redis", metavar="URL", help="Redis URL (default redis://127.0.0.1:6379/0; "
                   "redis+cluster://HOST:PORT for a Redis Cluster)")
    p.add_argument("--stream", help="alert stream (default saeguard:alerts)")
    p.add_argument("--spool-dir", metavar="DIR", help="alert spool directory (default var/spool)")
    p.add_argument("--auth-token", help="bearer token (prefer SAEGUARD_AUTH_TOKEN: flags show in ps)")
    p.add_argument("--max-prompt-tokens", type=int)
    p.add_argument("--max-tokens-cap", type=int)
    p.add_argument("--max-batch", type=int, metavar="N",
                   help="chat requests decoded together (continuous batching; default 8, 1: one at a time)")
    p.add_argument("--max-queue", type=int, metavar="N", help="requests waiting for the model before 503 (default 64)")
    p.add_argument("--prefill-chunk", type=int, metavar="N",
                   help="a longer prompt joining a running batch is prefilled N tokens per step "
                        "(default 256; 0: all at once)")
    p.add_argument("--redis-wait-replicas", type=int, metavar="N",
                   help="replicas that must confirm each alert batch (Redis WAIT) before it counts as delivered "
                        "(default 0; not with redis+cluster://)")
    p.add_argument("--dedup-ttl", type=int, metavar="S",
                   help="seconds each alert's write-once key lives in Redis (default 86400; >= 60). It must "
                        "outlast the longest Redis outage the spool may replay after; ~135 bytes per alert")
    p.add_argument("--shutdown-timeout", type=float, metavar="S", help="SIGTERM drain timeout (default 30)")
    p.add_argument("--no-watch", action="store_true", help="do not reload the policy on file changes")
    p.add_argument("--log-format", choices=("console", "json"), default="json", help="default json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from monitor.cli import CliError
    from monitor.server.lifecycle import serve
    from monitor.server.runtime import Runtime, StartupError
    from monitor.server.settings import SettingsError, load_settings

    flags = {field: getattr(args, name) for name, field in FLAG_FIELDS.items()}
    if args.no_watch:
        flags["watch_policy"] = False
    try:
        settings = load_settings(args.config, **flags)
        runtime = Runtime.build_in_thread(settings)  # the main thread never runs torch ops
    except (SettingsError, StartupError) as exc:
        raise CliError(str(exc)) from None
    return serve(runtime)
