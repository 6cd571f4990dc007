"""``saeguard train-probes`` end to end: attempts, shipped SAE probes, calibration, artifact.

Per concept (see :mod:`.framing`): the TF-IDF baseline and every research attempt
(:mod:`.experiment`) run on the same splits and LOSO folds; the shipped probe is fixed in
advance as ``sae:<pack layer>/token`` -- SAE features, trained on per-token rows -- the
only basis the run-time guard computes (``sigmoid(z_t @ W + b)`` per token, pooled by the
policy window); its window is chosen on validation splits and its thresholds calibrated on
the run-time reading (:mod:`.ship`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from classifiers.features.bank import ResidualBank
from classifiers.features.plan import DEFAULT_CAPS, benign_chats, message_key
from classifiers.probes.basis import Basis, TokenFeatures
from classifiers.probes.experiment import Attempt, AttemptResult, run_attempt, run_tfidf
from classifiers.probes.framing import FRAMINGS
from classifiers.probes.io import ProbeRecord, save_probes
from classifiers.probes.readings import Reading
from classifiers.probes.ship import (
    calibrate_scores,
    choose_reading,
    ranked_features,
    runtime_scores,
)
from classifiers.probes.sources_data import SPLIT_SEED, VAL_FRACTION, SourceData, load_sources
from monitor.hashing import file_sha256

log = structlog.get_logger(__name__)

#: C grid of the shipped (per-token) SAE probes; see train_concept.
SHIPPED_CS: tuple[float, ...] = (0.0003, 0.001, 0.003, 0.01)

#: Dataset -> folder under the datasets root (for the manifest's file hashes).
DATASET_FOLDERS = {
    "deception_lie_detector_pairs": "deception_lie_detector_pairs",
    "deception_repe_facts": "deception_repe_facts",
    "deception_truthfulqa": "deception_truthfulqa",
    "sycophancy_anthropic_opinion": "sycophancy_anthropic_opinion",
    "code_sven": "code_sven",
    "code_safecoder_secnew": "code_safecoder_secnew",
    "bias_bbq": "bias_bbq",
    "bias_bbq_stereo_vs_anti": "bias_bbq",
    "bias_winobias": "bias_winobias",
}


def research_attempts(layer: int, layers: Sequence[int]) -> list[Attempt]:
    """The default grid: dense layers, poolings, SAE, SAE + error (pooled and per-token),
    dense per-token, two layers."""
    out = [Attempt(f"dense:{x}", "mean") for x in layers]
    out += [Attempt(f"dense:{layer}", "last"), Attempt(f"dense:{layer}", "max")]
    out += [Attempt(f"sae:{layer}", "max"), Attempt(f"sae:{layer}", "last"),
            Attempt(f"saeerr:{layer}", "mean")]
    # the shipped recipe (per-token rows, same C grid) on SAE codes + error term and on the raw
    # residual: what shipping the error term (or a dense probe) at the SAE's hook would give
    out += [Attempt(f"saeerr:{layer}", "token", SHIPPED_CS), Attempt(f"dense:{layer}", "token", SHIPPED_CS)]
    others = [x for x in layers if x != layer]
    if others:
        out.append(Attempt(f"dense:{min(others)}+{layer}", "mean"))
    return out


def folder_hashes(root: Path, dataset: str) -> dict[str, str]:
    """sha256 of every file of a dataset's folder (relative path -> hash)."""
    folder = root / DATASET_FOLDERS.get(dataset, dataset)
    return {str(p.relative_to(root)): file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@dataclass
class ConceptOutcome:
    """Everything train-probes produced for one concept."""

    record: ProbeRecord
    results: list[AttemptResult]
    shipped: AttemptResult
    calibration: Any


def benign_keys(root: Path, n: int) -> list[str]:
    """Cache keys of the benign calibration chats (the extraction plan's)."""
    return [message_key(c) for c in benign_chats(root, n)]


def train_concept(concept: str, root: Path, bank: ResidualBank, feats: TokenFeatures, layer: int,
                  research: Sequence[Attempt], benign: Sequence[str], features_json: dict[str, Any],
                  sae_sha256: str) -> ConceptOutcome:
    """All attempts + the shipped probe of one concept."""
    framing = FRAMINGS[concept]
    sources = load_sources(framing.evaluated, root, bank)
    train_names = [s.name for s in framing.sources]
    held = framing.held_out_names
    results: list[AttemptResult] = [run_tfidf(concept, sources, train_names, held_out=held)]
    # Shipped: SAE features trained on per-token rows, because the run time scores every
    # token and pools probabilities in a window. (A probe trained on mean-pooled transcripts
    # has weights scaled for averages: applied per token its logits reach the hundreds and
    # the probabilities saturate at 1.0, so no threshold separates anything; it is kept as
    # a research attempt.)
    # C grid capped at 0.01: with weaker penalties the per-token logits on benign chat (out of
    # the training distribution) reach |30|+ and the averaged probabilities saturate (measured
    # on sycophancy with the interim SAE: 99th percentile of benign token logits 0.6 / 2.8 /
    # 11.7 / 34 at C = 0.001 / 0.01 / 0.1 / 1), while held-out CV AUROC gains nothing from them.
    shipped, fit = run_attempt(concept, Attempt(f"sae:{layer}", "token", SHIPPED_CS), feats, sources,
                               train_names, held_out=held)
    results.append(shipped)
    results.append(run_attempt(concept, Attempt(f"sae:{layer}", "mean"), feats, sources, train_names,
                               held_out=held)[0])
    shipped_attempt = shipped.attempt
    for attempt in research:
        try:
            results.append(run_attempt(concept, attempt, feats, sources, train_names, held_out=held)[0])
        except (ValueError, KeyError) as exc:
            log.warning("attempt_failed", concept=concept, attempt=attempt.name, error=str(exc))
    reading = choose_reading(shipped)
    basis = Basis.parse(shipped_attempt.basis)
    negs = []
    for name in train_names:
        sd = sources[name]
        T, off = feats.tokens(basis, sd.keys)
        r = runtime_scores(fit, T, off, reading)
        negs.append(r[sd.val & (sd.y == 0)])
    if benign:
        Tb, offb = feats.tokens(basis, benign)
        benign_scores = runtime_scores(fit, Tb, offb, reading)
    else:
        log.warning("no_benign_calibration_chats", note="thresholds from validation negatives only")
        benign_scores = np.zeros(0)
    cal = calibrate_scores(np.concatenate(negs), benign_scores, reading)
    pos_rows = np.vstack([feats.pooled(basis, sources[n].keys, "mean")[(~sources[n].val) & (sources[n].y == 1)]
                          for n in train_names])
    top, evidence = ranked_features(fit, pos_rows, features_json)
    record = ProbeRecord(
        name=concept,
        concept=concept,
        pooling="mean",
        weights=fit.weights,
        bias=fit.bias,
        thresholds=cal.thresholds,
        top_features=top,
        metrics=_metrics(shipped, results, reading, cal),
        training=_training(root, sources, train_names, fit, sae_sha256),
        extra={
            "layer": layer,
            "trained_on": "per-token rows (up to 16 per transcript)" if shipped_attempt.pooling == "token"
                          else "mean-pooled transcripts",
            "runtime_window": reading.to_json(),
            "score": "per-token sigmoid(z_t @ W + b); response score = max over positions of the "
                     f"{reading.reduce} of the last {reading.window} token scores (partial at the start)",
            "top_feature_evidence": evidence,
        },
    )
    return ConceptOutcome(record, results, shipped, cal)


def _metrics(shipped: AttemptResult, results: Sequence[AttemptResult], reading: Reading,
             cal: Any) -> dict[str, Any]:
    def pick(block: dict[str, Any]) -> dict[str, Any]:
        return {"pooled": block["pooled"], "runtime": block["runtime"].get(reading.name)}

    baselines = {}
    for res in results:
        if res.attempt.basis == "tfidf" or (res.attempt.basis.startswith("dense:")
                                            and "+" not in res.attempt.basis
                                            and res.attempt.basis.split(":")[1] == shipped.attempt.basis.split(":")[1]
                                            and res.attempt.pooling == "mean"):
            baselines[res.attempt.name] = {
                "in_source_val": {k: v["pooled"] for k, v in res.in_source.items()},
                "leave_one_source_out": {k: v["pooled"] for k, v in res.loso.items()},
                "held_out_sources": {k: v["pooled"] for k, v in res.cross.items()},
            }
    return {
        "in_source_val": {k: pick(v) for k, v in shipped.in_source.items()},
        "leave_one_source_out": {k: pick(v) | {"C": v.get("C")} for k, v in shipped.loso.items()},
        "held_out_sources": {k: pick(v) for k, v in shipped.cross.items()},
        "baselines": baselines,
        "calibration": {
            "window": reading.to_json(), "n_negatives": cal.n_negatives, "n_benign": cal.n_benign,
            "achieved_fpr": cal.achieved_fpr, "benign_fpr": cal.benign_fpr,
        },
        "goal": {"cross_source_auroc": 0.85, "tpr_at_1pct_fpr": 0.5},
    }


def _training(root: Path, sources: dict[str, SourceData], train_names: Sequence[str],
              fit: Any, sae_sha256: str) -> dict[str, Any]:
    datasets = sorted({sources[n].source.dataset for n in sources})
    return {
        "sources": list(train_names),
        "eval_only_sources": [n for n in sources if n not in train_names],
        "counts": {n: {"train": int((~sd.val).sum()), "val": int(sd.val.sum()),
                       "positive": int(sd.y.sum())} for n, sd in sources.items()},
        "split": {"val_fraction": VAL_FRACTION, "seed": SPLIT_SEED, "by": "group hash"},
        "caps": {d: DEFAULT_CAPS.get(d) for d in datasets},
        "C": fit.c, "cv_auroc": fit.cv_auroc, "cv": "leave-one-source-out over the training sources",
        "cv_by_c": [list(x) for x in fit.cv_by_c], "n_samples": fit.n_samples,
        "sae_sha256": sae_sha256,
        "files": {d: folder_hashes(root, d) for d in datasets},
    }


def save_outcomes(out_dir: Path, outcomes: Sequence[ConceptOutcome], hook_name: str,
                  top_extra: dict[str, Any]) -> None:
    """probes.safetensors/json + attempts.json (every attempt's numbers)."""
    save_probes(out_dir, [o.record for o in outcomes], hook_name, extra=top_extra)
    attempts = [{**r.summary(), "in_source": r.in_source, "loso": r.loso, "held_out_sources": r.cross}
                for o in outcomes for r in o.results]
    (out_dir / "attempts.json").write_text(json.dumps(_clean(attempts), indent=1) + "\n")


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return None if not np.isfinite(f) else round(f, 4)
    if isinstance(value, np.integer):
        return int(value)
    return value


def timestamp() -> str:
    """UTC time for the manifest."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
