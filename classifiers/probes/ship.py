"""Turn a chosen fit into a shipped probe: run-time window, calibrated thresholds, evidence.

- **window**: among the candidate policy windows (:data:`experiment.READINGS`), the one
  with the best mean AUROC over the sources' *validation* splits (never a held-out source);
- **thresholds**: :func:`calibrate.calibrate` on the run-time reading R (per-token scores
  pooled by that window, max over the response) of the validation negatives of every
  source plus benign chat from the SAE corpus; the achieved FPR on those negatives is
  stored next to each threshold;
- **top features**: weight x mean pooled activation over the positive training examples,
  with the feature's label/density from ``features.json`` when the pack has them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog

from classifiers.probes.calibrate import calibrate, check_thresholds
from classifiers.probes.experiment import READINGS, AttemptResult
from classifiers.probes.io import top_features
from classifiers.probes.readings import Reading, response_scores, token_probabilities
from classifiers.probes.train import ProbeFit

log = structlog.get_logger(__name__)

FPRS: tuple[float, ...] = (0.01, 0.05)


@dataclass(frozen=True)
class Calibration:
    """What the thresholds were measured on."""

    reading: Reading
    """The policy window the thresholds are for."""
    thresholds: dict[str, float]
    """FPR key -> threshold."""
    achieved_fpr: dict[str, float]
    """FPR key -> empirical FPR on the calibration negatives."""
    n_negatives: int
    """Calibration negatives (validation negatives + benign chat)."""
    n_benign: int
    """Of which benign chat."""
    benign_fpr: dict[str, float]
    """FPR key -> empirical FPR on the benign chat alone."""


def choose_reading(result: AttemptResult, readings: Sequence[Reading] = READINGS) -> Reading:
    """The window with the highest mean validation AUROC over the sources (ties: shorter)."""
    best, best_auc = readings[0], -1.0
    for r in readings:
        aucs = [v["runtime"][r.name]["auroc"] for v in result.in_source.values()
                if r.name in v["runtime"] and v["runtime"][r.name]["auroc"] is not None]
        if aucs and float(np.mean(aucs)) > best_auc + 1e-9:
            best, best_auc = r, float(np.mean(aucs))
    return best


def runtime_scores(fit: ProbeFit, T: Any, offsets: np.ndarray, reading: Reading) -> np.ndarray:
    """R of each item from its per-token features."""
    return response_scores(token_probabilities(fit.logits(T)), offsets, reading)


def calibrate_scores(negative_scores: np.ndarray, benign_scores: np.ndarray, reading: Reading,
                     fprs: Sequence[float] = FPRS) -> Calibration:
    """Thresholds on R over validation negatives plus benign chat (both already scored)."""
    neg = np.concatenate([np.ravel(negative_scores), np.ravel(benign_scores)])
    if neg.size * min(fprs) < 1:
        log.warning("calibration_too_few_negatives", negatives=int(neg.size), fpr=min(fprs))
    thresholds = calibrate(neg, fprs)
    return Calibration(
        reading=reading,
        thresholds=thresholds,
        achieved_fpr=check_thresholds(neg, thresholds),
        n_negatives=int(neg.size),
        n_benign=int(np.size(benign_scores)),
        benign_fpr=check_thresholds(benign_scores, thresholds) if np.size(benign_scores) else {},
    )


def ranked_features(fit: ProbeFit, pooled_pos: np.ndarray, features: Mapping[str, Any],
                    k: int = 32) -> tuple[list[tuple[int, float]], list[dict[str, Any]]]:
    """Top-k (feature, weight x typical activation) and their evidence records."""
    typical = np.asarray(pooled_pos, dtype=np.float64).mean(axis=0)
    top = top_features(fit.weights, typical, k)
    table = features.get("features", {}) if isinstance(features, Mapping) else {}
    evidence = []
    for fid, contribution in top:
        info = table.get(str(fid), {}) if isinstance(table, Mapping) else {}
        evidence.append({
            "id": fid, "contribution": contribution, "weight": float(fit.weights[fid]),
            "typical_activation": float(typical[fid]), "label": info.get("label", ""),
            "density": info.get("density"),
            "top_contexts": list(info.get("top_contexts", []))[:3],
        })
    return top, evidence


def refresh_evidence(probes_dir: Any, features: Mapping[str, Any]) -> int:
    """Re-attach ``features.json`` evidence to every probe's ``top_feature_evidence``.

    For probes trained before the pack's features.json existed; weights, thresholds and
    rankings are untouched. Returns the number of features that got a label.
    """
    from classifiers.probes.io import ProbeRecord, load_probes, save_probes

    ps = load_probes(probes_dir)
    table = features.get("features", {}) if isinstance(features, Mapping) else {}
    labelled = 0
    records = []
    for rec in ps.probes:
        extra = dict(rec.extra)
        evidence = []
        for item in extra.get("top_feature_evidence", []):
            info = table.get(str(item["id"]), {})
            labelled += bool(info.get("label"))
            evidence.append({**item, "label": info.get("label", ""), "density": info.get("density"),
                             "top_contexts": list(info.get("top_contexts", []))[:3]})
        extra["top_feature_evidence"] = evidence
        records.append(ProbeRecord(rec.name, rec.concept, rec.pooling, rec.weights, rec.bias,
                                   rec.thresholds, rec.top_features, rec.metrics, rec.training, extra))
    save_probes(probes_dir, records, ps.hook_name, extra=dict(ps.extra))
    return labelled
