"""What ``saeguard train-probes`` / ``eval-probes`` do (the CLI module only parses flags)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

log = structlog.get_logger(__name__)


class ProbeCommandError(ValueError):
    """A user-fixable problem (missing pack/cache, SAE mismatch); one line."""


@dataclass(frozen=True)
class PackSae:
    """The SAE the probes read."""

    sae: Any
    """SAELens SAE."""
    directory: Path
    """Its directory."""
    sha256: str
    """sha256 of its sae_weights.safetensors."""
    hook_name: str
    """Hook it reads."""
    layer: int
    """Layer of that hook."""


def load_pack_sae(sae_dir: Path) -> PackSae:
    """Load an SAE directory and hash its weights."""
    from classifiers.sae.cache import hook_layer
    from monitor.hashing import file_sha256
    from monitor.sae_spec import load_sae

    sae = load_sae(str(sae_dir))
    cfg = json.loads((sae_dir / "cfg.json").read_text())
    hook = (cfg.get("metadata") or {}).get("hook_name") or cfg.get("hook_name")
    if not hook:
        hook = str(sae.cfg.metadata.hook_name)
    return PackSae(sae, sae_dir, file_sha256(sae_dir / "sae_weights.safetensors"), hook, hook_layer(hook))


def check_sae_match(probes_doc: dict[str, Any], sae_sha256: str) -> str | None:
    """A one-line problem when probes.json was trained on another SAE than the pack's, else None."""
    trained = probes_doc.get("sae_sha256")
    if trained is None:
        return "probes.json records no sae_sha256: cannot tell which SAE the probes were trained on"
    if trained != sae_sha256:
        return (f"probes were trained on SAE {str(trained)[:12]} but the pack's SAE is {sae_sha256[:12]}: "
                "retrain with `saeguard train-probes`")
    return None


def train_all(pack: Path, sae_dir: Path, store: Path, root: Path, out_dir: Path,
              concepts: Sequence[str], layers: Sequence[int], quick: bool, notes: str,
              header_extra: dict[str, Any]) -> list[Any]:
    """Train every concept, save the artifact, the attempts, the ROC PNGs and REPORT.md."""
    from classifiers.features.bank import ResidualBank
    from classifiers.features.plan import BENIGN_SET, DEFAULT_CAPS
    from classifiers.probes.basis import TokenFeatures
    from classifiers.probes.experiment import Attempt
    from classifiers.probes.pipeline import (
        benign_keys,
        research_attempts,
        save_outcomes,
        timestamp,
        train_concept,
    )
    from classifiers.probes.report_md import render_report, roc_plots

    ps = load_pack_sae(sae_dir)
    bank = ResidualBank(store)
    if len(bank) == 0:
        raise ProbeCommandError(f"no cached residuals under {store}; run `saeguard probe-cache` first")
    if ps.layer not in layers:
        raise ProbeCommandError(f"the SAE reads layer {ps.layer} but the cache holds layers {list(layers)}")
    features_path = pack / "features.json"
    features_json = json.loads(features_path.read_text()) if features_path.is_file() else {}
    feats = TokenFeatures(bank, ps.sae, ps.layer)
    benign = [k for k in benign_keys(root, DEFAULT_CAPS[BENIGN_SET] or 300) if k in bank]
    # quick: the shipped candidates, TF-IDF and the dense baseline at the SAE's layer only
    research = [Attempt(f"dense:{ps.layer}", "mean")] if quick else research_attempts(ps.layer, layers)
    outcomes = []
    for concept in concepts:
        outcomes.append(train_concept(concept, root, bank, feats, ps.layer, research, benign,
                                      features_json, ps.sha256))
        feats.forget()
        bank.drop_cache()
    top_extra = {
        "sae_sha256": ps.sha256, "sae_dir": str(sae_dir), "feature_basis": "sae",
        "residual_cache": str(store), "trained_at": timestamp(), **header_extra,
    }
    save_outcomes(out_dir, outcomes, ps.hook_name, top_extra)
    roc_plots(out_dir, outcomes)
    header = {"SAE": f"{sae_dir} (sha256 {ps.sha256[:16]}, hook {ps.hook_name}, d_sae {ps.sae.cfg.d_sae})",
              "residual cache": str(store), "benign calibration chats": len(benign), **header_extra}
    (out_dir / "REPORT.md").write_text(render_report(outcomes, header, notes))
    return outcomes


def external_eval(pack: Path, data: Path, concept: str | None, model_spec: str,
                  allow_sae_mismatch: bool = False) -> dict[str, Any]:
    """``eval-probes --data``: per-concept {n, auroc, auprc, tpr_at_1pct_fpr}."""
    from classifiers.probes.external import by_concept, read_external, report
    from classifiers.probes.io import load_probes
    from classifiers.probes.runtime_eval import probe_reading, score_chats
    from monitor.model import load_model
    from monitor.pack import PackError, load_pack

    try:  # a pack scores only the model it was built for: refuse another before loading it
        guard_pack = load_pack(pack, with_sae=False, check_probes=False)
        guard_pack.check_model_spec(model_spec)
    except PackError as exc:
        raise ProbeCommandError(str(exc)) from None
    probes = load_probes(pack / "probes")
    names = [p.name for p in probes.probes]
    if concept is not None and concept not in names:
        raise ProbeCommandError(f"--concept {concept!r}: the pack has probes {names}")
    ps = load_pack_sae(pack / "sae")
    problem = check_sae_match(dict(probes.extra), ps.sha256)
    if problem and not allow_sae_mismatch:
        raise ProbeCommandError(problem)
    examples = read_external(data)
    groups = by_concept(examples, concept)
    unknown = sorted(set(groups) - set(names))
    if unknown:
        raise ProbeCommandError(f"{data}: concepts {unknown} have no probe in the pack ({names})")
    lm = load_model(model_spec)
    try:
        guard_pack.check_model(lm.spec, lm.weights_sha256)
    except PackError as exc:
        raise ProbeCommandError(str(exc)) from None
    result: dict[str, Any] = {}
    for name, items in groups.items():
        rec = probes.probes[names.index(name)]
        scored = score_chats(lm, ps.sae, ps.layer, rec.weights[:, None], np.asarray([rec.bias]),
                             [probe_reading(dict(rec.extra))], [e.chat() for e in items],
                             W_resid=None if rec.resid_weights is None else rec.resid_weights[:, None])
        ok = np.isfinite(scored.scores[:, 0])
        if not ok.any():
            raise ProbeCommandError(f"{data}: no {name} chat could be scored (every prompt fills the model's context)")
        result[name] = report(scored.scores[ok, 0], np.asarray([e.label for e in items])[ok])
        if scored.truncated:
            result[name]["truncated"] = len(scored.truncated)
        if scored.skipped:
            result[name]["skipped_lines"] = [items[i].line for i in scored.skipped]
    return result
