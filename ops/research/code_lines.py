"""Unsafe code, read over lines: the issue asks for code spans scored as a mean over the
function and a max over its lines, not only the last token. Fits the dense code probe the
way dense_ship.py does (SVEN vulnerable vs fixed, answer-token rows and answer-mean rows,
layer of the pack's hook, in-source training split) and reads each answer's per-token
logits five ways: last token, max token, answer mean, max over lines of the line mean,
and max over lines of the line max. Judged on the in-source validation split and on the
held-out source (SafeCoder's sec-new pairs).

    OMP_NUM_THREADS=1 .venv/bin/python ops/research/code_lines.py [--model qwen2.5-coder-1.5b-instruct]

Reads the cached per-token residuals (var/dense/<model>/tokens) and the model's tokenizer
only (to find line breaks in the first 160 answer tokens, the span the cache holds).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dense_probes import FRAMINGS, build_sets, evaluate  # noqa: E402
from dense_ship import SHIP, Tokens, transcripts_of  # noqa: E402

from classifiers.datasets.split import group_unit  # noqa: E402
from classifiers.dense.ship import ROWS, fit_dense, token_logits  # noqa: E402
from classifiers.features.render import render  # noqa: E402

READS = ("last", "max_token", "answer_mean", "max_line_mean", "max_line_max")


def line_ids(tokenizer, transcripts, max_content: int = 160) -> list[np.ndarray]:
    """Per transcript, the line number of each cached answer token."""
    out = []
    for t in transcripts:
        rt = render(tokenizer, t.messages)
        ids = rt.ids[rt.start : min(rt.end, rt.start + max_content)]
        line, lines = 0, []
        for i in ids:
            lines.append(line)
            if "\n" in tokenizer.decode([i]):
                line += 1
        out.append(np.asarray(lines))
    return out


def read(logits: np.ndarray, offsets: np.ndarray, lines: list[np.ndarray], how: str) -> np.ndarray:
    out = np.empty(len(lines))
    for i, ln in enumerate(lines):
        seg = logits[offsets[i] : offsets[i + 1]]
        if ln.size != seg.size:
            raise ValueError(f"answer {i}: {seg.size} cached tokens, {ln.size} rendered")
        if how == "last":
            out[i] = seg[-1]
        elif how == "max_token":
            out[i] = seg.max()
        elif how == "answer_mean":
            out[i] = seg.mean()
        else:
            per = [seg[ln == k] for k in np.unique(ln)]
            out[i] = max(p.mean() if how == "max_line_mean" else p.max() for p in per)
    return out


def main() -> int:
    from transformers import AutoTokenizer

    from monitor.model.dequant import fp32_cache_dir
    from monitor.model.loader import default_cache_root
    from monitor.model.registry import MODELS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--layer", type=int, default=14)
    args = ap.parse_args()
    hf_dir, _ = fp32_cache_dir(MODELS[args.model], default_cache_root())
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    work = ROOT / "var" / "dense" / args.model
    sets = build_sets(None, work, 400, 300)
    tokens = Tokens(args.model, work, args.layer, 1)
    fr = next(f for f in FRAMINGS if f.name == SHIP["unsafe_code"])
    ts = transcripts_of(fr, sets)
    (train_set,) = fr.train_set.split("+")
    tok = tokens.get(train_set, sets[train_set])
    lines = line_ids(tokenizer, sets[train_set])
    y = np.array([t.label for t in ts])
    groups = [t.group for t in ts]
    val = np.flatnonzero([group_unit("study", g, 0) < 0.2 for g in groups])
    train = np.flatnonzero([group_unit("study", g, 0) >= 0.2 for g in groups])
    held = {h: (tokens.get(h, sets[h]), line_ids(tokenizer, sets[h]), np.array([t.label for t in sets[h]]))
            for h in fr.held_out}
    rows = []
    for rows_kind in ROWS:
        fit = fit_dense(tok, y, groups, train, args.layer, rows=rows_kind)
        lg = token_logits(tok, fit.w, fit.b)
        for how in READS:
            r_all = read(lg, tok.offsets, lines, how)
            row = {"rows": rows_kind, "read": how, "in_source_val": evaluate(r_all[val], y[val]), "held_out": {}}
            for h, (th, lh, yh) in held.items():
                row["held_out"][h] = evaluate(read(token_logits(th, fit.w, fit.b), th.offsets, lh, how), yh)
            rows.append(row)
            print(f"{rows_kind:6s} {how:14s} val {row['in_source_val']['auroc']:.3f}  " + "  ".join(
                f"{h} {c['auroc']:.3f} [{c['ci95'][0]:.2f}, {c['ci95'][1]:.2f}] TPR {c['tpr_at_1pct_fpr']:.2f}"
                for h, c in row["held_out"].items()), flush=True)
    (work / "code_lines.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
