"""fp32 vs bf16 weight storage on this CPU, on a model's own matrix shapes.

    .venv/bin/python ops/bench/weights_dtype.py [--model qwen2.5-coder-1.5b-instruct] [--threads 2]

Times the matrix products of one decode step (batch 1: matrix-vector, memory-bound) and of
a 64-token prefill chunk (batch 64: compute-bound) over all layers' weights (Q/K/V, O,
gate+up, down, and the unembedding), stored as fp32 and as bf16, interleaved, median of 5.
No model is loaded: the shapes come from the registry's GGUF metadata, the values are
random (speed does not depend on them). Last line: JSON with ms per step for each dtype,
the bf16/fp32 ratios and the weight bytes. Decides the engine's storage dtype (README).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch


def shapes(spec: str) -> tuple[int, list[tuple[int, int]]]:
    from gguf import GGUFReader

    from monitor.model.dequant import verified_gguf
    from monitor.model.loader import default_cache_root
    from monitor.model.registry import MODELS

    entry = MODELS[spec]
    path, _ = verified_gguf(entry, default_cache_root())
    f = GGUFReader(str(path)).fields
    arch = entry.architecture

    def val(k: str) -> int:
        return int(f[f"{arch}.{k}"].contents())

    d, d_mlp, h, kv = val("embedding_length"), val("feed_forward_length"), val("attention.head_count"), \
        val("attention.head_count_kv")
    dh = d // h
    vocab = len(f["tokenizer.ggml.tokens"].contents())
    layer = [((h + 2 * kv) * dh, d), (d, h * dh), (2 * d_mlp, d), (d, d_mlp)]
    return val("block_count"), [*layer, (vocab, d)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n_layers, mats = shapes(args.model)
    layer, unembed = mats[:-1], mats[-1]
    weights = {dt: ([[torch.randn(o, i).to(dt) for o, i in layer] for _ in range(n_layers)],
                    torch.randn(*unembed).to(dt)) for dt in (torch.float32, torch.bfloat16)}
    res: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for dt, (ws, wu) in weights.items():
            for batch in (1, 64):
                xs = {i: torch.randn(batch, i).to(dt) for _, i in mats}  # one input per width
                t = time.perf_counter()
                with torch.inference_mode():
                    for lw in ws:
                        for w in lw:
                            torch.nn.functional.linear(xs[w.shape[1]], w)
                    torch.nn.functional.linear(xs[wu.shape[1]], wu)
                key = f"{'fp32' if dt == torch.float32 else 'bf16'}_batch{batch}_ms"
                res.setdefault(key, []).append((time.perf_counter() - t) * 1e3)
        print({k: round(v[-1], 1) for k, v in res.items()}, file=sys.stderr, flush=True)
    med = {k: round(statistics.median(v), 1) for k, v in res.items()}
    n_params = n_layers * sum(o * i for o, i in layer) + unembed[0] * unembed[1]
    out = {**med, "ratio_bf16_vs_fp32_decode": round(med["bf16_batch1_ms"] / med["fp32_batch1_ms"], 3),
           "ratio_bf16_vs_fp32_prefill64": round(med["bf16_batch64_ms"] / med["fp32_batch64_ms"], 3),
           "weights_gb_fp32": round(n_params * 4 / 1e9, 2), "weights_gb_bf16": round(n_params * 2 / 1e9, 2),
           "model": args.model, "threads": args.threads, "repeats": args.repeats,
           "load_average": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
