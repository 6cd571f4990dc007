"""Do other linear estimators transfer across sources better than logistic regression?

The probes' held-out-source AUROC is ~0.5 whatever the basis or pooling (REPORT.md). This
study keeps the data, framing, pooled features and leave-one-source-out (LOSO) folds of
``saeguard train-probes`` and changes only how the direction is estimated:

- ``lr``: L2 logistic regression, C by LOSO-CV over the training sources (the pipeline's);
- ``pairlr``: the same on *pair-centred* rows (each row minus its group's mean; groups are
  the contrastive pairs: one question, one prompt, one code function), so only
  within-pair differences are fitted and between-question content cannot be learned;
- ``massmean``: difference of class means, averaged over the training sources with equal
  weight (mass-mean probing, Marks & Tegmark 2023, "The Geometry of Truth", reported to
  transfer better than logistic regression);
- ``massmean_z``: the same on features z-scored with the training rows' spread (so a few
  large residual dimensions do not dominate the projection).

Each is scored by the AUROC of ``x @ w`` on all of the held-out source. Features come from
the residual cache (``saeguard probe-cache``) and the pack's SAE.

    OMP_NUM_THREADS=2 python -m ops.research.probes.estimator_study \\
        --concepts sycophancy,deception,unsafe_code,bias \\
        --bases dense:9,dense:12,dense:6,dense:15,sae:9 --poolings mean,last

One JSON line per (concept, basis, pooling) on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ops.research.probes.studies import add_common_args, resolve_store

CS = (0.001, 0.01, 0.1, 1.0)

Part = tuple[np.ndarray, np.ndarray, np.ndarray]
"""(X [n, d], y [n], groups [n]) of one source."""


def centre_by_group(X: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows minus their group's mean, and each row's group size."""
    uniq, inv = np.unique(groups, return_inverse=True)
    sums = np.zeros((uniq.size, X.shape[1]))
    np.add.at(sums, inv, X)
    counts = np.bincount(inv, minlength=uniq.size)
    return X - (sums / counts[:, None])[inv], counts[inv]


def mass_mean(parts: Sequence[Part]) -> np.ndarray:
    """Mean over sources of (positive mean - negative mean)."""
    out: np.ndarray = np.mean([X[y == 1].mean(0) - X[y == 0].mean(0) for X, y, _ in parts], axis=0)
    return out


def directions(parts: Sequence[Part]) -> dict[str, np.ndarray]:
    """Every estimator's weight vector over raw features, trained on ``parts``."""
    from classifiers.probes.train import train_probe

    X = np.vstack([p[0] for p in parts])
    spread = X.std(0) + 1e-6
    out = {"massmean": mass_mean(parts),
           "massmean_z": mass_mean([(Xs / spread, ys, gs) for Xs, ys, gs in parts]) / spread}
    y = np.concatenate([p[1] for p in parts])
    g = np.concatenate([p[2] for p in parts])
    by_source = np.concatenate([np.full(p[1].size, i) for i, p in enumerate(parts)])
    folds_on, n_folds = (by_source, len(parts)) if len(parts) >= 2 else (g, 3)
    out["lr"] = train_probe(X, y, folds_on, cs=CS, n_folds=n_folds).weights
    Xc, size = centre_by_group(X, g)
    paired = size >= 2
    out["pairlr"] = train_probe(Xc[paired], y[paired], folds_on[paired], cs=CS, n_folds=n_folds).weights
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    parser.add_argument("--concepts", default="sycophancy,deception,unsafe_code,bias")
    parser.add_argument("--bases", default="dense:9,sae:9")
    parser.add_argument("--poolings", default="mean,last")
    args = parser.parse_args(argv)

    from classifiers.datasets import resolve_datasets_root
    from classifiers.features.bank import ResidualBank
    from classifiers.probes.basis import Basis, TokenFeatures
    from classifiers.probes.commands import load_pack_sae
    from classifiers.probes.framing import FRAMINGS
    from classifiers.probes.metrics import auroc
    from classifiers.probes.sources_data import load_sources
    from monitor.logging_setup import configure_logging

    configure_logging()
    store = resolve_store(parser, args.store)
    root = resolve_datasets_root(args.datasets)
    bank = ResidualBank(store)
    ps = load_pack_sae(Path(args.pack) / "sae")
    feats = TokenFeatures(bank, ps.sae, ps.layer)
    for concept in args.concepts.split(","):
        framing = FRAMINGS[concept]
        sources = load_sources(framing.sources, root, bank)
        names = [s.name for s in framing.sources]
        for spec in args.bases.split(","):
            basis = Basis.parse(spec)
            for pooling in args.poolings.split(","):
                data = {n: (np.asarray(feats.pooled(basis, sd.keys, pooling), np.float64), sd.y, sd.groups)
                        for n, sd in sources.items()}
                loso = {}
                for held in names:
                    Xh, yh, _ = data[held]
                    ws = directions([data[n] for n in names if n != held])
                    loso[held] = {k: round(auroc(Xh @ w, yh), 3) for k, w in ws.items()}
                sys.stdout.write(json.dumps({"concept": concept, "basis": spec, "pooling": pooling,
                                             "loso_auroc": loso}) + "\n")
                sys.stdout.flush()
            feats.forget()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
