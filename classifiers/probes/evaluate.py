"""``saeguard eval-probes`` on the cached sets: the pack's saved probes, scored the run-time
way, next to the two baselines refit on the same splits and folds.

The saved probe is scored on each source's validation split (in-source) and on the
evaluation-only sources; its leave-one-source-out numbers need refits without the held-out
source, so they are re-run here with the probe's own recipe (SAE features; per-token rows
and the shipped C grid for a probe trained on per-token rows, else mean pooling; C by
LOSO-CV) together with the baselines' LOSO runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.probes.commands import ProbeCommandError, check_sae_match, load_pack_sae
from classifiers.probes.external import report
from classifiers.probes.metrics import RocCurve, roc_png


def _f(x: Any) -> str:
    return "  –  " if x is None else f"{float(x):.3f}"


def loso_recipe(extra: dict[str, Any], layer: int) -> Any:
    """The attempt that reproduces a saved probe's training recipe (for its LOSO refits):
    per-token rows with the shipped C grid, or mean-pooled transcripts for older probes."""
    from classifiers.probes.experiment import Attempt
    from classifiers.probes.pipeline import SHIPPED_CS

    if str(extra.get("trained_on", "")).startswith("per-token"):
        return Attempt(f"sae:{layer}", "token", SHIPPED_CS)
    return Attempt(f"sae:{layer}", "mean")


def evaluate_cached(pack: Path, store: Path, root: Path, concept: str | None,
                    allow_sae_mismatch: bool = False, concepts: Sequence[str] | None = None) -> str:
    """Evaluate; write probes/eval.json and roc_<concept>_eval.png; return a text table."""
    from classifiers.features.bank import ResidualBank
    from classifiers.probes.basis import Basis, TokenFeatures
    from classifiers.probes.experiment import Attempt, run_attempt, run_tfidf
    from classifiers.probes.framing import FRAMINGS
    from classifiers.probes.io import load_probes
    from classifiers.probes.runtime_eval import probe_reading
    from classifiers.probes.ship import runtime_scores
    from classifiers.probes.sources_data import load_sources
    from classifiers.probes.train import ProbeFit

    probes = load_probes(pack / "probes")
    ps = load_pack_sae(pack / "sae")
    problem = check_sae_match(dict(probes.extra), ps.sha256)
    if problem and not allow_sae_mismatch:
        raise ProbeCommandError(problem)
    bank = ResidualBank(store)
    feats = TokenFeatures(bank, ps.sae, ps.layer)
    basis = Basis.parse(f"sae:{ps.layer}")
    wanted = [concept] if concept else list(concepts or [p.name for p in probes.probes])
    rows = ["concept      source                                      split     n     SAE-runtime  SAE-TPR@1%  dense   tfidf"]
    out: dict[str, Any] = {}
    for rec in probes.probes:
        if rec.name not in wanted:
            continue
        framing = FRAMINGS[rec.concept]
        sources = load_sources(framing.evaluated, root, bank)
        train_names = [s.name for s in framing.sources]
        held = framing.held_out_names
        fit = ProbeFit.saved(rec.weights, rec.bias)
        reading = probe_reading(dict(rec.extra))
        dense = run_attempt(rec.concept, Attempt(f"dense:{ps.layer}", "mean"), feats, sources, train_names,
                            held_out=held)[0]
        tfidf = run_tfidf(rec.concept, sources, train_names, held_out=held)
        sae_loso = run_attempt(rec.concept, loso_recipe(dict(rec.extra), ps.layer), feats, sources, train_names,
                               held_out=held)[0]
        curves = []
        res: dict[str, Any] = {}
        for name, sd in sources.items():
            T, off = feats.tokens(basis, sd.keys)
            r = runtime_scores(fit, T, off, reading)
            mask = sd.val if name in train_names else np.ones(sd.y.size, bool)
            split = "val" if name in train_names else "all"
            rep = report(r[mask], sd.y[mask])
            base_of = "cross" if name in held else "in_source"
            res[f"{split}|{name}"] = {"sae_runtime": rep,
                                      "dense": getattr(dense, base_of).get(name, {}).get("pooled"),
                                      "tfidf": getattr(tfidf, base_of).get(name, {}).get("pooled")}
            curves.append(RocCurve(f"SAE ({reading.name}) / {name} {split}", r[mask], sd.y[mask]))
            rows.append(f"{rec.name:12s} {name:43s} {split:5s} {rep['n']:5d}   {_f(rep['auroc'])}        "
                        f"{_f(rep['tpr_at_1pct_fpr'])}      {_f(res[f'{split}|{name}']['dense'] and res[f'{split}|{name}']['dense']['auroc'])}   "
                        f"{_f(res[f'{split}|{name}']['tfidf'] and res[f'{split}|{name}']['tfidf']['auroc'])}")
        for name in train_names:
            lo = sae_loso.loso.get(name)
            if not lo:
                continue
            rt = lo["runtime"].get(reading.name) or lo["pooled"]
            d = dense.loso[name]["pooled"]
            t = tfidf.loso[name]["pooled"]
            res[f"heldout|{name}"] = {"sae_runtime": rt, "dense": d, "tfidf": t}
            rows.append(f"{rec.name:12s} {name:43s} held  {rt['n']:5d}   {_f(rt['auroc'])}        "
                        f"{_f(rt['tpr_at_1pct_fpr'])}      {_f(d['auroc'])}   {_f(t['auroc'])}")
            s, y = sae_loso.curves[f"loso|{name}|{reading.name}"]
            curves.append(RocCurve(f"SAE held-out / {name}", s, y))
        roc_png(pack / "probes" / f"roc_{rec.name}_eval.png", curves, title=f"{rec.name}: eval-probes")
        out[rec.name] = res
    (pack / "probes" / "eval.json").write_text(json.dumps(out, indent=1, default=float) + "\n")
    rows.append("held = leave-one-source-out (the recipe trained without that source); val = in-source "
                "validation split; all = evaluation-only or held-out source, scored in full. SAE-runtime: per-token scores pooled by "
                "the probe's calibrated window, max over the response.")
    return "\n".join(rows)
