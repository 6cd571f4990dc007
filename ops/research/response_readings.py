"""How a shipped dense probe's verdict should be read over a response: per token through a
short policy window (what the guard does today), or once over the whole answer (what the
pooled study measured). Scores the 1.5B pack's shipped probes (no refit) on the cached
per-token residuals (var/dense/<model>/tokens, written by dense_ship.py) and prints, per
concept and reading, the in-source validation AUROC and every held-out source's AUROC.

    .venv/bin/python ops/research/response_readings.py [--model qwen2.5-coder-1.5b-instruct]

Readings: ``max1``/``mean4``/``mean16`` (max over positions of a window mean, the policy's
windows), ``answer_mean`` (the mean of the answer's per-token logits: a linear probe on the
answer's mean residual, read once at the end), ``last`` (the answer's last token), and
``running_mean_from_N`` (max over t >= N of the mean logit of tokens 0..t: a verdict that
may fire during the answer once N tokens are in and equals ``answer_mean``'s evidence at
the end). Needs no model when the caches are there.
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

from dense_probes import FRAMINGS, build_sets  # noqa: E402
from dense_ship import SHIP, Tokens, concat, transcripts_of  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

from classifiers.datasets.split import group_unit  # noqa: E402
from classifiers.dense.ship import READINGS, reading_scores, token_logits  # noqa: E402
from classifiers.probes.metrics import auroc  # noqa: E402


def per_answer(logits: np.ndarray, offsets: np.ndarray, items: range | np.ndarray, how: str) -> np.ndarray:
    out = []
    for i in items:
        seg = logits[offsets[i] : offsets[i + 1]]
        if how == "answer_mean":
            out.append(seg.mean())
        elif how == "last":
            out.append(seg[-1])
        else:
            n = int(how.rsplit("_", 1)[1])
            run = np.cumsum(seg) / np.arange(1, seg.size + 1)
            out.append(run[min(n, seg.size) - 1 :].max())
        continue
    return np.asarray(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    args = ap.parse_args()
    pack = ROOT / "classifiers" / "packs" / args.model / "probes"
    meta = json.loads((pack / "probes.json").read_text())
    W = load_file(str(pack / "probes.safetensors"))
    names = list(meta["probes"])
    layer = int(meta["hook_name"].split(".")[1])
    work = ROOT / "var" / "dense" / args.model
    sets = build_sets(None, work, 400, 300)
    tokens = Tokens(args.model, work, layer, 1)
    by_name = {f.name: f for f in FRAMINGS}
    readings = [r.name for r in READINGS] + ["answer_mean", "last", "running_mean_from_8", "running_mean_from_16"]
    table: dict[str, dict[str, dict[str, float]]] = {}
    for concept, framing in SHIP.items():
        j = names.index(concept)
        w, b = W["W_resid"][:, j], float(W["b"][j])
        fr = by_name[framing]
        ts = transcripts_of(fr, sets)
        tok = concat([tokens.get(n, sets[n]) for n in fr.train_set.split("+")])
        y = np.array([t.label for t in ts])
        val = np.flatnonzero([group_unit("study", t.group, 0) < 0.2 for t in ts])
        lg = token_logits(tok, w, b)
        row: dict[str, dict[str, float]] = {}
        for rd in readings:
            def score(tk, lgs, items, rd=rd):
                r = next((r for r in READINGS if r.name == rd), None)
                return reading_scores(lgs, tk, items, r) if r else per_answer(lgs, tk.offsets, items, rd)
            row[rd] = {"in_source_val": round(auroc(score(tok, lg, val), y[val]), 4)}
            for h in fr.held_out:
                th = tokens.get(h, sets[h])
                yh = np.array([t.label for t in sets[h]])
                row[rd][h] = round(auroc(score(th, token_logits(th, w, b), range(len(sets[h]))), yh), 4)
        table[concept] = row
        print(f"\n{concept} ({framing}); shipped window {meta['probes'][concept]['runtime_window']}")
        cols = ["in_source_val", *fr.held_out]
        print("  reading".ljust(24) + "".join(c[:28].rjust(30) for c in cols))
        for rd, vals in row.items():
            print(f"  {rd}".ljust(24) + "".join(f"{vals[c]:.3f}".rjust(30) for c in cols))
    out = work / "response_readings.json"
    out.write_text(json.dumps(table, indent=1))
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
