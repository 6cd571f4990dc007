"""Join stall: how long a running stream pauses when a long prompt joins its batch, with the
whole prompt prefilled in one forward (baseline) vs chunked prefill, measured in one run.

    .venv/bin/python ops/bench/join_stall.py [--repeats 3] [--prompt-tokens 1500] [--threads 2]

A request decodes on the real model (the engine's BatchDecoder, as the daemon runs it);
after 8 of its tokens a ~1,500-token prompt joins. Recorded for the running request: the
longest gap between two of its tokens from the join until the new request's first token
(plus 8 more steps), and its median gap before the join; for the joining request: the time
from the join to its first token. Modes are interleaved per repeat; medians over repeats.
Prints progress lines, then ONE JSON line (the last line) with both modes and the ratios
chunked / whole.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402


def one_join(engine: Any, chunk: int | None, short_ids: list[int], long_ids: list[int]) -> dict[str, float]:
    from monitor.engine import SamplingParams
    from monitor.engine.batch import BatchRequest

    dec = engine.batch_decoder(4)
    dec.prefill_chunk = chunk
    running = BatchRequest("running", short_ids, SamplingParams(max_tokens=400))
    joining = BatchRequest("joining", long_ids, SamplingParams(max_tokens=16))
    stamps: list[float] = []
    dec.add(running)
    stamps.append(time.perf_counter())
    while len(stamps) < 8:
        if dec.step().get(running):
            stamps.append(time.perf_counter())
    before = [b - a for a, b in zip(stamps, stamps[1:])]
    t_join = time.perf_counter()
    after = [stamps[-1]]
    first_token = None
    for ev in dec.add(joining):  # the baseline prefills here, inside add()
        first_token = time.perf_counter() if ev else first_token
    extra = 8
    while extra > 0 and not running.done:
        events = dec.step()
        now = time.perf_counter()
        if events.get(running):
            after.append(now)
        if first_token is None and events.get(joining):
            first_token = now
        if first_token is not None:
            extra -= 1
    gaps = [b - a for a, b in zip(after, after[1:])]
    assert first_token is not None and not running.done
    return {"max_gap_ms": 1000 * max(gaps), "median_gap_before_ms": 1000 * statistics.median(before),
            "ttft_joining_ms": 1000 * (first_token - t_join)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--prompt-tokens", type=int, default=1500)
    ap.add_argument("--chunk", type=int, default=None, help="chunk size (default: the engine's PREFILL_CHUNK)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from monitor.engine import Engine
    from monitor.engine.batch import PREFILL_CHUNK
    from monitor.model import load_model

    chunk = args.chunk or PREFILL_CHUNK
    lm = load_model()
    engine = Engine.from_loaded(lm)
    short_ids = engine.render([{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}])
    filler = " ".join(f"Line {i}: the {['red', 'blue', 'green'][i % 3]} box holds {i * 7 % 13} coins." for i in range(400))
    long_ids = engine.render([{"role": "user", "content": filler + "\nWhich box holds the most coins?"}])
    long_ids = long_ids[: args.prompt_tokens - 6] + long_ids[-6:]  # keep the chat template's tail
    modes = {"whole": None, f"chunked_{chunk}": chunk}
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    with torch.inference_mode():
        one_join(engine, chunk, short_ids, long_ids[:300])  # warm-up
        for rep in range(args.repeats):
            for name, c in modes.items():
                r = one_join(engine, c, short_ids, long_ids)
                runs[name].append(r)
                harness.progress("join_done", repeat=rep, mode=name, **{k: round(v, 1) for k, v in r.items()})
    med = {m: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for m, rs in runs.items()}
    whole, chunked = med["whole"], med[f"chunked_{chunk}"]
    harness.result_line({
        "benchmark": "join_stall", "prompt_tokens": len(long_ids), "chunk": chunk, "repeats": args.repeats,
        "whole": whole, "chunked": chunked,
        "max_gap_ratio": chunked["max_gap_ms"] / whole["max_gap_ms"],
        "ttft_ratio": chunked["ttft_joining_ms"] / whole["ttft_joining_ms"],
        "machine": harness.machine(), "threads": args.threads,
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
