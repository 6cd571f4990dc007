"""Dense residual probes vs SAE-feature probes vs SAE features plus the SAE's error norm,
on the larger model, with the framings the shipped probes use (issue: probes that
generalise, item 5). One vector per answer, read two ways (the answer's mean, its last
token); each kind is fitted on the in-source training split with C chosen by grouped CV
(classifiers/dense/probe.py: standardise + L2 logistic regression) and judged on the
in-source validation split and on every held-out source.

    OMP_NUM_THREADS=1 .venv/bin/python ops/research/sae_vs_dense.py \
        [--model qwen2.5-coder-1.5b-instruct]

Reads the per-token answer residuals cached by dense_ship.py (var/dense/<model>/tokens;
no model run) and the pack's SAE (SAELens, encoded here on the CPU). Writes
var/dense/<model>/sae_vs_dense.json and prints the table that goes into the pack's
probes/NOTES.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dense_probes import FRAMINGS, build_sets, evaluate  # noqa: E402
from dense_ship import SHIP, Tokens, transcripts_of  # noqa: E402

from classifiers.datasets.split import group_unit  # noqa: E402
from classifiers.dense.extract import TokenResiduals  # noqa: E402
from classifiers.dense.probe import fit_probe  # noqa: E402
from classifiers.probes.metrics import auroc  # noqa: E402
from monitor.pack.loader import load_pack  # noqa: E402

KINDS = ("dense", "sae", "sae+error")


@torch.no_grad()
def pooled(tok: TokenResiduals, sae: object, chunk: int = 8192) -> dict[str, np.ndarray]:
    """Per answer: mean and last of the residual x, the SAE codes z, and ||x - x_hat||."""
    n_items = tok.offsets.size - 1
    d, d_sae = tok.X.shape[1], int(sae.cfg.d_sae)  # type: ignore[attr-defined]
    out = {k: np.zeros((n_items, w), np.float32) for k, w in
           (("x_mean", d), ("x_last", d), ("z_mean", d_sae), ("z_last", d_sae), ("e_mean", 1), ("e_last", 1))}
    owner = np.repeat(np.arange(n_items), np.diff(tok.offsets))
    last = tok.offsets[1:] - 1
    counts = np.maximum(np.diff(tok.offsets), 1)[:, None].astype(np.float32)
    for s in range(0, tok.X.shape[0], chunk):
        x = torch.from_numpy(tok.X[s : s + chunk].astype(np.float32))
        z = sae.encode(x)  # type: ignore[attr-defined]
        err = (x - sae.decode(z)).norm(dim=-1, keepdim=True)  # type: ignore[attr-defined]
        o = owner[s : s + chunk]
        for name, v in (("x", x), ("z", z), ("e", err)):
            np.add.at(out[f"{name}_mean"], o, v.numpy())
            rows = np.flatnonzero((last >= s) & (last < s + chunk))
            out[f"{name}_last"][rows] = v.numpy()[last[rows] - s]
    for name in ("x", "z", "e"):
        out[f"{name}_mean"] /= counts
    return out


def features(p: dict[str, np.ndarray], kind: str, read: str) -> np.ndarray:
    if kind == "dense":
        return p[f"x_{read}"]
    if kind == "sae":
        return p[f"z_{read}"]
    return np.concatenate([p[f"z_{read}"], p[f"e_{read}"]], axis=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    args = ap.parse_args()
    pack = load_pack(ROOT / "classifiers" / "packs" / args.model, check_probes=False)
    sae = pack.sae
    layer = int(pack.hook_name.split(".")[1])
    work = ROOT / "var" / "dense" / args.model
    sets = build_sets(None, work, 400, 300)
    tokens = Tokens(args.model, work, layer, 1)
    by_name = {f.name: f for f in FRAMINGS}
    memo: dict[str, dict[str, np.ndarray]] = {}

    def pooled_set(name: str) -> dict[str, np.ndarray]:
        if name not in memo:
            t0 = time.perf_counter()
            memo[name] = pooled(tokens.get(name, sets[name]), sae)
            print(f"  encoded {name} ({len(sets[name])} answers, {time.perf_counter() - t0:.0f} s)", flush=True)
        return memo[name]

    rows = []
    for concept, framing in SHIP.items():
        fr = by_name[framing]
        ts = transcripts_of(fr, sets)
        parts = [pooled_set(n) for n in fr.train_set.split("+")]
        p = {k: np.concatenate([q[k] for q in parts]) for k in parts[0]}
        y = np.array([t.label for t in ts])
        groups = [t.group for t in ts]
        val = np.array([group_unit("study", g, 0) < 0.2 for g in groups])
        tr, va = np.flatnonzero(~val), np.flatnonzero(val)
        for read in ("mean", "last"):
            for kind in KINDS:
                X = features(p, kind, read)
                t0 = time.perf_counter()
                probe = fit_probe(X[tr], y[tr], [groups[i] for i in tr], layer, f"{kind}/{read}")
                row = {"concept": concept, "framing": framing, "read": read, "kind": kind, "C": probe.C,
                       "in_source_val": round(auroc(probe.logit(X[va]), y[va]), 4), "held_out": {}}
                for h in fr.held_out:
                    ph = pooled_set(h)
                    yh = np.array([t.label for t in sets[h]])
                    row["held_out"][h] = evaluate(probe.logit(features(ph, kind, read)), yh)
                rows.append(row)
                print(f"{concept:12s} {read:5s} {kind:10s} val {row['in_source_val']:.3f}  " + "  ".join(
                    f"{h} {c['auroc']:.3f} [{c['ci95'][0]:.2f}, {c['ci95'][1]:.2f}]" for h, c in row["held_out"].items())
                    + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    out = work / "sae_vs_dense.json"
    out.write_text(json.dumps({"sae_sha256": pack.manifest.sae.get("weights_sha256"), "rows": rows}, indent=1))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
