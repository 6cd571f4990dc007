"""Unsafe-code probes with a longer answer window and more pairs (issue 4, "what is left").

The pipeline reads 192 assistant tokens, which cut about a third of SVEN's pairs to
identical text, and takes 400 transcripts per code set. Here each code set is read again
with ``--window`` content tokens (default 512) and ``--cap`` transcripts (default 800).
The selection is the pipeline's (:func:`classifiers.features.plan.load_selected`). Pairs
still identical within the window are dropped. Residuals are taken at the pack's SAE
layer, one full forward per transcript; nothing is cached.

A probe is trained on one code set and scored on the other, in both directions, and the
in-source grouped CV is reported too. The probe is a grouped-CV logistic regression over
mean- or max-pooled SAE codes or dense residuals.

    OMP_NUM_THREADS=2 python -m ops.research.probes.code_window_study --window 512 --cap 800

One JSON object on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ops.research.probes.studies import add_common_args

CODE_SETS = ("code_sven", "code_safecoder_secnew")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, store=False)
    parser.add_argument("--window", type=int, default=512, help="assistant content tokens read")
    parser.add_argument("--cap", type=int, default=800, help="transcripts per code set")
    args = parser.parse_args(argv)

    import torch

    from classifiers.datasets import resolve_datasets_root
    from classifiers.features.extract import residuals_plain
    from classifiers.features.plan import load_selected
    from classifiers.features.pooling import pool
    from classifiers.features.render import render
    from classifiers.features.sae_basis import encode_tokens
    from classifiers.probes.commands import load_pack_sae
    from classifiers.probes.metrics import auroc
    from classifiers.probes.sources_data import identical_pairs
    from classifiers.probes.train import train_probe
    from monitor.engine.fastpath import FastForward
    from monitor.logging_setup import configure_logging
    from monitor.model import load_model

    configure_logging()
    t0 = time.perf_counter()
    root = resolve_datasets_root(args.datasets)
    lm = load_model()
    ff = FastForward(lm.model)
    ps = load_pack_sae(Path(args.pack) / "sae")
    data: dict[str, dict[str, np.ndarray]] = {}
    kept_of: dict[str, list[int]] = {}
    for name in CODE_SETS:
        ts = load_selected(name, root, args.cap, 0)
        rows, ids = [], []
        with torch.inference_mode():
            for i, t in enumerate(ts):
                res = residuals_plain(lm.model, ff, render(lm.tokenizer, t.messages), [ps.layer], args.window)
                rows.append(res.layers[ps.layer].astype(np.float32))
                ids.append(res.ids.tobytes())
                if i % 100 == 0:
                    sys.stderr.write(f"[code_window_study] {name}: {i}/{len(ts)} ({time.perf_counter() - t0:.0f} s)\n")
        groups = np.asarray([t.group for t in ts])
        keep = np.ones(len(ts), bool)
        keep[sorted(identical_pairs(ts, ids))] = False
        X = np.concatenate([r for r, k in zip(rows, keep, strict=True) if k])
        offsets = np.concatenate([[0], np.cumsum([r.shape[0] for r, k in zip(rows, keep, strict=True) if k])])
        Z = encode_tokens(ps.sae, X, with_error=False).Z
        data[name] = {"dense_mean": pool(X, offsets, "mean"), "dense_max": pool(X, offsets, "max"),
                      "sae_mean": pool(Z, offsets, "mean"), "sae_max": pool(Z, offsets, "max"),
                      "y": np.asarray([t.label for t in ts])[keep], "g": groups[keep]}
        kept_of[name] = [int(keep.sum()), len(ts)]
    out: dict[str, object] = {"experiment": "code_window_study", "window": args.window, "cap": args.cap,
                              "kept_of_selected": kept_of}
    for feat in ("dense_mean", "dense_max", "sae_mean", "sae_max"):
        result = {}
        for train, test in (CODE_SETS, CODE_SETS[::-1]):
            d = data[train]
            fit = train_probe(d[feat], d["y"], d["g"], cs=(0.001, 0.01, 0.1, 1.0), n_folds=3,
                              scale_floor_quantile=0.5 if feat.startswith("sae") else None)
            result[f"{train}->{test}"] = round(auroc(fit.logits(data[test][feat]), data[test]["y"]), 3)
            result[f"cv_{train}"] = round(fit.cv_auroc, 3)
        out[feat] = result
    out["seconds"] = round(time.perf_counter() - t0, 1)
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
