"""Weight formats on this CPU, on a model's own matrix shapes: fp32, bf16, and weight-only
int8 and int4 (torch's CPU kernels).

    .venv/bin/python ops/bench/weights_dtype.py [--model qwen2.5-coder-1.5b-instruct] [--threads 2]
                                                [--layers N] [--formats fp32,bf16,int8,int4]

Times the matrix products of one decode step (batch 1: matrix-vector, memory-bound) and of
a 64-token prefill chunk (batch 64: compute-bound) over the layers' weights (Q/K/V, O,
gate+up, down, and the unembedding), interleaved, median of the repeats:

- ``fp32``/``bf16``: ``F.linear`` on weights stored in that dtype (input in the same dtype);
- ``int8``: per-output-channel symmetric int8, ``torch._weight_int8pack_mm`` (fp32 input);
- ``int4``: asymmetric groups of 32, ``torch._weight_int4pack_mm_for_cpu`` (bf16 input:
  the kernel's only input dtype).

No model is loaded: the shapes come from the registry's GGUF metadata, the values are
random (speed does not depend on them). ``--layers N`` times N layers (plus the
unembedding) instead of all, to fit beside other work; the ratios are what matter. Last
line: JSON with ms per step for each format, the ratios against fp32 and the weight bytes.
Decides the engine's storage format (README).
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


def quantize(w: torch.Tensor, fmt: str) -> object:
    """The stored form of an fp32 weight [out, in] in ``fmt``."""
    if fmt == "fp32":
        return w
    if fmt == "bf16":
        return w.to(torch.bfloat16)
    if fmt == "int8":
        scale = w.abs().amax(1).clamp_min(1e-8) / 127
        return (w / scale[:, None]).round().clamp(-128, 127).to(torch.int8), scale
    if fmt == "int4":
        n, k = w.shape
        g = w.reshape(n, k // GROUP, GROUP)
        lo, hi = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
        sc = ((hi - lo) / 15).clamp_min(1e-8)
        q = ((g - lo) / sc).round().clamp(0, 15).to(torch.int32).reshape(n, k)
        sz = torch.stack([sc.squeeze(-1).T, (lo + 8 * sc).squeeze(-1).T], -1).to(torch.bfloat16).contiguous()
        return torch._convert_weight_to_int4pack_for_cpu(q, 2), sz
    raise ValueError(fmt)


def product(x: torch.Tensor, stored: object, fmt: str) -> torch.Tensor:
    if fmt in ("fp32", "bf16"):
        return torch.nn.functional.linear(x, stored)  # type: ignore[arg-type]
    if fmt == "int8":
        q, scale = stored  # type: ignore[misc]
        return torch._weight_int8pack_mm(x, q, scale)
    packed, sz = stored  # type: ignore[misc]
    return torch._weight_int4pack_mm_for_cpu(x, packed, GROUP, sz)


GROUP = 32
INPUT = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.float32, "int4": torch.bfloat16}
BYTES = {"fp32": 4.0, "bf16": 2.0, "int8": 1.0 + 4 / 1536, "int4": 0.5 + 4 / GROUP}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--layers", type=int, default=0, help="time this many layers (default: all)")
    ap.add_argument("--formats", default="fp32,bf16,int8,int4")
    ap.add_argument("--out", default=None, help="also write the JSON here (default ops/bench/results/weights_dtype.json)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n_layers, mats = shapes(args.model)
    n_layers = min(n_layers, args.layers) if args.layers else n_layers
    layer, unembed = mats[:-1], mats[-1]
    formats = args.formats.split(",")
    weights = {}
    for fmt in formats:
        torch.manual_seed(0)
        weights[fmt] = ([[quantize(torch.randn(o, i), fmt) for o, i in layer] for _ in range(n_layers)],
                        quantize(torch.randn(*unembed), fmt))
    res: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for fmt, (ws, wu) in weights.items():
            for batch in (1, 64):
                xs = {i: torch.randn(batch, i).to(INPUT[fmt]) for _, i in mats}  # one input per width
                t = time.perf_counter()
                with torch.inference_mode():
                    for lw in ws:
                        for (_, i), w in zip(layer, lw, strict=True):
                            product(xs[i], w, fmt)
                    product(xs[unembed[1]], wu, fmt)
                res.setdefault(f"{fmt}_batch{batch}_ms", []).append((time.perf_counter() - t) * 1e3)
        print({k: round(v[-1], 1) for k, v in res.items()}, file=sys.stderr, flush=True)
    med = {k: round(statistics.median(v), 1) for k, v in res.items()}
    n_params = n_layers * sum(o * i for o, i in layer) + unembed[0] * unembed[1]
    ratios = {f"ratio_{fmt}_vs_fp32_{kind}": round(med[f"{fmt}_batch{b}_ms"] / med[f"fp32_batch{b}_ms"], 3)
              for fmt in formats if fmt != "fp32" and "fp32" in formats for kind, b in (("decode", 1), ("prefill64", 64))}
    out = {**med, **ratios, **{f"weights_gb_{fmt}": round(n_params * BYTES[fmt] / 1e9, 2) for fmt in formats},
           "layers_timed": n_layers, "model": args.model, "threads": args.threads, "repeats": args.repeats,
           "torch": torch.__version__, "load_average": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(out))
    from pathlib import Path

    dest = Path(args.out) if args.out else Path(__file__).resolve().parent / "results" / "weights_dtype.json"
    dest.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
