"""Aggregate streaming throughput at 1, 4 and 8 concurrent clients (continuous batching).

    .venv/bin/python ops/bench/concurrency.py [--levels 1,4,8] [--rounds 2] [--max-tokens 64]
        [--threads 2] [--max-batch 8] [--policy policies/default.yaml] [--weights fp32|bf16|int4]
        [--model SPEC --pack DIR]

Starts a private redis-server and a real ``saeguard serve`` (committed guard pack, the
given policy: the default one monitors every token), warms it up, then for each level
``c`` runs ``c`` streaming clients on loopback, each sending ``--rounds`` requests back to
back (greedy, ``max_tokens`` tokens, a different prompt per request). Aggregate tok/s =
tokens the clients received / wall time of the level. ``speedup_8`` is ``tok_s_8 /
tok_s_1`` measured in the same run on the same daemon (the baseline is one client at a
time, i.e. what a one-request-at-a-time daemon delivers). Also reports the median time to
first token and per-stream tok/s per level.

Run it on an otherwise idle machine: any other CPU load distorts the ratios.
Last stdout line: ``{"tok_s_1": ..., "tok_s_4": ..., "tok_s_8": ..., "speedup_8": ..., ...}``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

TOPICS = ["a lighthouse keeper", "a lost robot", "the history of tea", "how volcanoes form", "a chess game",
          "a city at night", "the life of a bee", "a journey by train", "why the sky is blue", "a baker",
          "the first moon landing", "a storm at sea", "a library cat", "learning the violin", "a desert oasis",
          "autumn in a forest"]


def prompt(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Write a detailed paragraph about {TOPICS[i % len(TOPICS)]}."}]


def run_level(base: str, clients: int, rounds: int, max_tokens: int, offset: int) -> dict[str, float]:
    def client(k: int) -> list[harness.StreamResult]:
        out = []
        with httpx.Client() as c:
            for r in range(rounds):
                out.append(harness.stream_chat(c, base, prompt(offset + k * rounds + r), max_tokens=max_tokens))
        return out

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [res for batch in pool.map(client, range(clients)) for res in batch]
    wall = time.perf_counter() - t0
    failed = [r for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} requests failed at concurrency {clients}: {failed[0].error}")
    tokens = sum(r.tokens for r in results)
    ttft = [r.t_first - r.t_start for r in results if r.t_first is not None]
    per_stream = [r.tokens / (r.t_end - r.t_start) for r in results if r.t_end > r.t_start]
    return {"tok_s": tokens / wall, "tokens": tokens, "requests": len(results), "wall_s": wall,
            "ttft_p50_s": statistics.median(ttft), "stream_tok_s_p50": statistics.median(per_stream)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="1,4,8", help="comma-separated client counts (default 1,4,8)")
    ap.add_argument("--rounds", type=int, default=2, help="requests per client per level (default 2)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="daemon torch threads (default 2)")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--policy", type=Path, default=harness.ROOT / "policies" / "default.yaml")
    ap.add_argument("--weights", default="fp32", help="the daemon's weight format (default fp32)")
    ap.add_argument("--model", default=None, help="model spec (default: the daemon's default)")
    ap.add_argument("--pack", default=None, help="guard pack for --model")
    args = ap.parse_args()
    model_args = [*(["--model", args.model] if args.model else []), *(["--pack", args.pack] if args.pack else [])]
    levels = [int(x) for x in args.levels.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench-concurrency-") as tmp, harness.private_redis() as redis_srv, \
            harness.daemon(redis_srv.url, Path(tmp), policy_file=args.policy, threads=args.threads,
                           extra=["--max-batch", str(args.max_batch), "--weights", args.weights, *model_args]) as d:
        harness.progress("warmup")
        with httpx.Client() as c:
            warm = harness.stream_chat(c, d.base, prompt(0), max_tokens=16)
        if not warm.ok:
            raise RuntimeError(f"warm-up request failed: {warm.error}")
        per_level: dict[int, dict[str, float]] = {}
        offset = 1
        for level in levels:
            harness.progress("level_start", clients=level)
            per_level[level] = run_level(d.base, level, args.rounds, args.max_tokens, offset)
            offset += level * args.rounds
            harness.progress("level_done", clients=level, **{k: round(v, 3) for k, v in per_level[level].items()})

    result: dict[str, object] = {f"tok_s_{n}": round(v["tok_s"], 2) for n, v in per_level.items()}
    base_level = min(levels)
    for n in levels:
        if n != base_level:
            result[f"speedup_{n}"] = round(per_level[n]["tok_s"] / per_level[base_level]["tok_s"], 2)
    result["levels"] = {str(n): {k: round(v, 3) for k, v in m.items()} for n, m in per_level.items()}
    result["params"] = {"rounds": args.rounds, "max_tokens": args.max_tokens, "threads": args.threads,
                        "max_batch": args.max_batch, "policy": str(args.policy), "weights": args.weights,
                        "model": args.model or "smollm2-135m-instruct"}
    result["machine"] = harness.machine()
    harness.result_line(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
