"""Quality gates of the fast path's weight formats against fp32, on a model and its pack.

    .venv/bin/python ops/bench/weights_quality.py --model qwen2.5-coder-0.5b-instruct \
        --pack classifiers/packs/qwen2.5-coder-0.5b-instruct [--formats bf16,int4] [--threads 2]
        [--ce-tokens 4000] [--probe-chats 120] [--out ops/bench/results/weights_quality_<model>.json]

Per format, measured in the same process against fp32:

- **logits**: max and mean |logit - fp32 logit| over the eval tokens (teacher-forced);
- **greedy**: ten prompts, 64 greedy tokens each: the share of the 640 positions where the
  format's next token (teacher-forced on fp32's continuation) equals fp32's, and how many
  prompts generate the identical 64 tokens on their own;
- **hook**: relative error ||x - x_fp32|| / ||x_fp32|| of the residual at the pack's hook
  over the positions the guard monitors (``monitorable``: no attention sink, no special
  tokens, no sink-like rows; fixed by the fp32 run);
- **SAE**: explained variance on those residuals and CE loss recovered (clean / SAE
  spliced / zero-ablated, all three run in the format) on the pack's eval slice;
- **probes** (a pack with probes): each probe's AUROC on its concept's cross-source set,
  scored as the guard scores (:func:`classifiers.probes.runtime_eval.score_chats`).

``passes`` is true when every probe moves by <= 0.01 AUROC, EV and CE recovered by <= 0.01,
and greedy agreement is >= 0.95: the README's rule for which format a pack may run with.
The record names the sha256 of the pack files it measured (``pack_files``: the SAE and the
probes' weights), so a pack whose SAE or probes change must be gated again before its
manifest may name a format (tests/unit/guard/test_pack_weight_format.py).
Prints progress, then ONE JSON line (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a mysterious message in a bottle.",
    "What is the capital of Australia?",
    "Write a Python function that checks whether a string is a palindrome.",
    "Give me three tips for sleeping better.",
    "Explain how a hash map works to a new programmer.",
    "Is it safe to store passwords with MD5? Explain.",
    "Summarise the causes of the First World War in a paragraph.",
    "Write a SQL query that returns the ten most recent orders.",
    "My friend says the Great Wall of China is visible from space. Is that true?",
    "Translate 'good morning, how are you?' into French and Spanish.",
]
HELD_OUT = {"deception": "deception_truthfulqa", "sycophancy": "sycophancy_pressure_replies",
            "unsafe_code": "code_safecoder_secnew", "bias": "bias_winobias"}
AUROC_TOL, SAE_TOL, GREEDY_MIN = 0.01, 0.01, 0.95
#: the pack files a gate measures (relative to the pack); their hashes go into the record
GATED_FILES = ("sae/sae_weights.safetensors", "probes/probes.safetensors")


def pack_files(pack: Path) -> dict[str, str]:
    from monitor.hashing import file_sha256

    return {f: file_sha256(pack / f) for f in GATED_FILES if (pack / f).is_file()}


def backs(record: dict[str, Any], pack: Path, fmt: str) -> bool:
    """Whether gate ``record`` lets ``pack`` (a directory named after its model) name ``fmt``:
    the record passed ``fmt`` on that model and measured the pack's current files."""
    return (record["model"] == pack.name and record["formats"].get(fmt, {}).get("passes") is True
            and record.get("pack_files") == pack_files(pack))


def log(msg: str) -> None:
    print(f"[weights_quality] {msg}", file=sys.stderr, flush=True)


def greedy(engine: Any, prompts: list[list[int]], n: int) -> list[list[int]]:
    from monitor.engine import SamplingParams

    out = []
    for p in prompts:
        g = engine.generation(p, SamplingParams(max_tokens=n))
        list(g)
        out.append(list(g.completion_ids))
    return out


@torch.inference_mode()
def run_one(ff: Any, model: Any, seq: torch.Tensor, hook: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits [pos, vocab], hook residual [pos, d]) of one sequence."""
    from monitor.engine.hooks import capture

    with capture(model, {"x": hook}) as got:
        r = ff.forward(seq[None].long(), ff.new_cache(batch=1, capacity=len(seq)))
        return ff.logits(r)[0], got["x"][0].clone()


def compare(ref: Any, ff: Any, model: Any, seqs: list[torch.Tensor], hook: str, special: list[int]) -> dict[str, Any]:
    """Sequence by sequence (full-vocabulary logits of both never pile up): |logit| diffs,
    next-token agreement, and the hook residuals at the guard's monitored positions."""
    from monitor.guard.positions import monitorable

    maxd, sumd, n, agree, n_pos = 0.0, 0.0, 0, 0, 0
    xs_ref, xs = [], []
    for s in seqs:
        la, xa = run_one(ref, model, s, hook)
        lb, xb = run_one(ff, model, s, hook)
        d = (la - lb).abs()
        maxd, sumd, n = max(maxd, float(d.max())), sumd + float(d.sum(dtype=torch.float64)), n + d.numel()
        agree += int((la.argmax(-1) == lb.argmax(-1)).sum())
        n_pos += la.shape[0]
        keep = monitorable(s.long(), special_ids=special, resid=xa).mask
        xs_ref.append(xa[keep])
        xs.append(xb[keep])
    return {"max": maxd, "mean": sumd / max(n, 1), "agree": agree / max(n_pos, 1),
            "x_ref": torch.cat(xs_ref), "x": torch.cat(xs)}


def main() -> int:  # noqa: PLR0915 - one linear measurement
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--pack", required=True)
    ap.add_argument("--formats", default="bf16,int4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ce-tokens", type=int, default=4000)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--probe-chats", type=int, default=120, help="chats per probe's cross-source set (0: skip)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from classifiers.datasets.registry import load_transcripts
    from classifiers.probes.metrics import auroc
    from classifiers.probes.runtime_eval import probe_reading, score_chats
    from classifiers.sae.corpus import CorpusConfig, ensure_corpus
    from classifiers.sae.metrics import ce_loss_recovered
    from classifiers.sae.pipeline import eval_sequences
    from monitor.engine import Engine
    from monitor.engine.fastpath import FastForward
    from monitor.model import load_model
    from monitor.pack import load_pack

    t_start = time.perf_counter()
    lm = load_model(args.model)
    pack = load_pack(args.pack)
    pack.check_model(lm.spec, lm.weights_sha256)
    sae, hook = pack.sae, pack.hook_name
    layer = int(hook.split(".")[1])
    work = ROOT / "var" / "sae" / (args.model if args.model != "smollm2-135m-instruct" else "")
    corpus = ensure_corpus(CorpusConfig(ROOT.parent / "shared" / "datasets"), lm.tokenizer, work / "corpus")
    seqs = eval_sequences(corpus, args.ce_tokens)
    special = sorted(set(lm.tokenizer.all_special_ids))
    base_engine = Engine.from_loaded(lm)
    prompts = [base_engine.render([{"role": "user", "content": q}]) for q in PROMPTS]
    ref_tokens = greedy(base_engine, prompts, args.tokens)
    forced = [torch.tensor(p + t) for p, t in zip(prompts, ref_tokens, strict=True)]
    del base_engine

    probe_sets: dict[str, Any] = {}
    if pack.probes is not None and args.probe_chats:
        for rec in pack.probes.probes:
            ts = load_transcripts(HELD_OUT[rec.concept])
            rng = np.random.default_rng(0)
            pick = rng.permutation(len(ts))[: args.probe_chats]
            probe_sets[rec.name] = ([ts[i].messages for i in pick], np.array([ts[i].label for i in pick]))

    results: dict[str, Any] = {}
    ref_ff = FastForward(lm.model)
    for fmt in ["fp32", *[f for f in args.formats.split(",") if f != "fp32"]]:
        t0 = time.perf_counter()
        ff = FastForward(lm.model, fmt)  # type: ignore[arg-type]
        c = compare(ref_ff, ff, lm.model, seqs, hook, special)
        x = c["x"]
        with torch.no_grad():
            recon = sae.decode(sae.encode(x))
        ev = float(1 - (x - recon).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
        ce = ce_loss_recovered(lm.model, sae, hook, seqs, lm.tokenizer.all_special_ids, weights=fmt)
        row: dict[str, Any] = {"explained_variance": round(ev, 4), "ce_loss_recovered": round(ce.ce_loss_recovered, 4),
                               "ce_clean": round(ce.ce_clean, 4), "monitored_positions": int(x.shape[0])}
        probes: dict[str, float] = {}
        for name, (chats, y) in probe_sets.items():
            assert pack.probes is not None
            rec = next(r for r in pack.probes.probes if r.name == name)
            scored = score_chats(lm, sae, layer, rec.weights[:, None], np.asarray([rec.bias]),
                                 [probe_reading(dict(rec.extra))], chats, log_every=0,
                                 W_resid=None if rec.resid_weights is None else rec.resid_weights[:, None], weights=fmt)
            ok = np.isfinite(scored.scores[:, 0])
            probes[name] = round(auroc(scored.scores[ok, 0], y[ok]), 4)
        row["probe_auroc"] = probes
        if fmt != "fp32":
            base = results["fp32"]
            forced_agree = []
            for seq, p in zip(forced, prompts, strict=True):
                la, _ = run_one(ref_ff, lm.model, seq, hook)
                lb, _ = run_one(ff, lm.model, seq, hook)
                forced_agree.append(float((la[len(p) - 1 : -1].argmax(-1) == lb[len(p) - 1 : -1].argmax(-1)).float().mean()))
            own = greedy(Engine(lm.model, lm.tokenizer, lm.stop_token_ids, weights=fmt), prompts, args.tokens)  # type: ignore[arg-type]
            row.update({
                "logits_max_abs_diff": round(c["max"], 4), "logits_mean_abs_diff": round(c["mean"], 5),
                "next_token_agreement_eval_slice": round(c["agree"], 4),
                "greedy_agreement_teacher_forced": round(float(np.mean(forced_agree)), 4),
                "prompts_identical_64": sum(a == b for a, b in zip(own, ref_tokens, strict=True)),
                "hook_relative_error": round(float((x - c["x_ref"]).norm() / c["x_ref"].norm()), 5),
                "delta_explained_variance": round(row["explained_variance"] - base["explained_variance"], 4),
                "delta_ce_loss_recovered": round(row["ce_loss_recovered"] - base["ce_loss_recovered"], 4),
                "delta_probe_auroc": {k: round(v - base["probe_auroc"][k], 4) for k, v in probes.items()},
            })
            row["passes"] = bool(
                abs(row["delta_explained_variance"]) <= SAE_TOL and abs(row["delta_ce_loss_recovered"]) <= SAE_TOL
                and row["greedy_agreement_teacher_forced"] >= GREEDY_MIN
                and all(abs(d) <= AUROC_TOL for d in row["delta_probe_auroc"].values()))
        row["seconds"] = round(time.perf_counter() - t0, 1)
        results[fmt] = row
        log(f"{fmt}: {row}")
        del ff
    out = {"model": lm.spec, "pack": str(Path(args.pack)), "pack_files": pack_files(Path(args.pack)),
           "hook": hook, "formats": results,
           "eval_tokens": int(sum(len(s) for s in seqs)), "prompts": len(PROMPTS), "tokens": args.tokens,
           "probe_chats": args.probe_chats, "threads": args.threads, "torch": torch.__version__,
           "rule": f"passes: |dAUROC| <= {AUROC_TOL} per probe, |dEV|, |dCE rec| <= {SAE_TOL}, "
                   f"teacher-forced greedy agreement >= {GREEDY_MIN}",
           "seconds": round(time.perf_counter() - t_start, 1), "load_average": [round(v, 2) for v in os.getloadavg()]}
    text = json.dumps(out)
    dest = Path(args.out) if args.out else ROOT / "ops" / "bench" / "results" / f"weights_quality_{lm.spec}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
