"""Ship dense verdict probes into a model's guard pack: one probe per concept, trained on
per-token answer residuals at the pack's SAE hook with the framing chosen in :data:`SHIP`,
its policy window chosen and its thresholds calibrated in-source, judged on held-out
sources exactly as the guard will score them.

    OMP_NUM_THREADS=1 .venv/bin/python ops/research/dense_ship.py \
        --model qwen2.5-coder-1.5b-instruct [--threads 1] [--fp32-check 120]

Needs the study's cached sets (ops/research/dense_probes.py: the on-policy generations)
and the pack's SAE (sae-eval --pack). Per-token residuals are cached under
var/dense/<model>/tokens/ (a rerun without a model when all are there). Writes
probes/probes.json + probes.safetensors (feature_basis resid) and probes/SHIPPED.md, which
the study's REPORT.md includes. What each step does: classifiers/dense/ship.py.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import structlog

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dense_probes import FRAMINGS, Framing, build_sets, evaluate, to_bf16, write_report  # noqa: E402

from classifiers.datasets.split import group_unit  # noqa: E402
from classifiers.datasets.types import Transcript  # noqa: E402
from classifiers.dense.extract import TokenResiduals, token_residuals  # noqa: E402
from classifiers.dense.ship import (  # noqa: E402
    READINGS,
    ROWS,
    TOKENS_PER_ITEM,
    DenseFit,
    effective_feature_weights,
    fit_dense,
    reading_scores,
    token_logits,
    token_rows,
)
from classifiers.probes.baselines import assistant_texts, train_tfidf_baseline  # noqa: E402
from classifiers.probes.calibrate import fpr_key  # noqa: E402
from classifiers.probes.io import ProbeRecord, save_probes, top_features  # noqa: E402
from classifiers.probes.metrics import RocCurve, auroc, roc_png  # noqa: E402
from classifiers.probes.readings import Reading  # noqa: E402
from classifiers.probes.ship import calibrate_scores  # noqa: E402

log = structlog.get_logger("dense_ship")

SHIP: dict[str, str] = {
    # decided before shipping, on published priors (several sources carry across better than
    # one) and the study's in-source numbers, then reported on every held-out source
    "deception": "multi-source: RepE facts + the three instructed pairs",
    "sycophancy": "multi-source: own caving + opinion agreement",
    "unsafe_code": "off-policy: SVEN vulnerable vs fixed",
    "bias": "multi-source: BBQ biased-vs-unknown + stereotyped-vs-anti",
}
GOAL_AUROC = {"deception": 0.90, "bias": 0.90, "sycophancy": 0.85, "unsafe_code": 0.85}
N_BENIGN = 400
N_HARMLESS = 200
REFUSAL = re.compile(r"\b(sorry|I can(no|')t|I won't|I will not|not (able|comfortable)|illegal|I don't think"
                     r"|I'm not sure (that|this) is)\b", re.I)


def transcripts_of(fr: Framing, sets: dict[str, list[Transcript]]) -> list[Transcript]:
    return [Transcript(t.messages, t.label, t.concept, t.source, f"{n}/{t.group}", t.meta)
            for n in fr.train_set.split("+") for t in sets[n]]


def concat(parts: Sequence[TokenResiduals]) -> TokenResiduals:
    offs, base = [np.zeros(1, np.int64)], 0
    for p in parts:
        offs.append(p.offsets[1:] + base)
        base += int(p.offsets[-1])
    return TokenResiduals(parts[0].layer, np.concatenate([p.X for p in parts]), np.concatenate(offs))


class Tokens:
    """Per-token residual caches (one .npz per set and layer), loading the model only when
    one is missing."""

    def __init__(self, model: str, work: Path, layer: int, threads: int):
        self.model, self.work, self.layer, self.threads = model, work / "tokens", layer, threads
        self.lm: Any = None
        self._memo: dict[str, TokenResiduals] = {}

    def _lm(self) -> Any:
        if self.lm is None:
            import torch

            from monitor.model import load_model

            torch.set_num_threads(self.threads)
            self.lm = load_model(self.model)
            to_bf16(self.lm)
        return self.lm

    def get(self, name: str, ts: Sequence[Transcript]) -> TokenResiduals:
        key = hashlib.sha256(json.dumps([t.uid for t in ts] + [self.layer, "bf16"]).encode()).hexdigest()[:12]
        path = self.work / f"{name.replace(':', '_')}-L{self.layer}-{key}.npz"
        if path.name in self._memo:  # a held-out set is read by the shipped probe and by the alternative
            return self._memo[path.name]
        if path.is_file():
            z = np.load(path)
            self._memo[path.name] = TokenResiduals(self.layer, z["X"], z["offsets"])
            return self._memo[path.name]
        t0 = time.perf_counter()
        tok = token_residuals(self._lm(), ts, self.layer, what=name)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, X=tok.X, offsets=tok.offsets)
        log.info("token_set", set=name, n=len(ts), tokens=int(tok.offsets[-1]), seconds=round(time.perf_counter() - t0))
        return tok


def chat_transcripts(chats: Sequence[Sequence[dict[str, str]]], source: str) -> list[Transcript]:
    """Unlabelled chats (label 0) wrapped as transcripts; the concept field is a placeholder."""
    return [Transcript(tuple({"role": m["role"], "content": m["content"]} for m in c[:2]), 0, "deception", source,
                       f"{source}/{i}") for i, c in enumerate(chats)]


def harmless_answers(datasets_root: Path, n: int) -> list[Transcript]:
    """First exchanges of hh-rlhf's red-team prompts whose chosen reply declines or pushes
    back (a harmless answer to a harmful-sounding prompt)."""
    from classifiers.sae.sources import corpus_files, read_source, register_builtin_readers

    if not corpus_files():
        register_builtin_readers()
    out = []
    for doc in read_source(datasets_root, "sae_corpus_hh_rlhf_extra/harmless-base_test.jsonl"):
        m = doc.messages or ()
        if len(m) >= 2 and m[0]["role"] == "user" and m[1]["role"] == "assistant" and REFUSAL.search(m[1]["content"]):
            out.append(m[:2])
        if len(out) >= n:
            break
    return chat_transcripts(out, "hh_rlhf_harmless_refusals")


def explain(fit: DenseFit, sae: Any, tok: TokenResiduals, pos_items: Sequence[int], features: dict[str, Any],
            k: int = 32) -> tuple[list[tuple[int, float]], list[dict[str, Any]]]:
    """Top features by ``W_eff[f] x`` their mean activation on positive answer tokens."""
    import torch

    X, _ = token_rows(tok, pos_items, per_item=8)
    with torch.no_grad():
        z = sae.encode(torch.from_numpy(X)).numpy()
    typical = z.mean(0)
    w_eff = effective_feature_weights(sae.W_dec.detach().numpy(), fit.w)
    top = top_features(w_eff, typical, k)
    table = features.get("features", {})
    evidence = [{"id": f, "contribution": c, "effective_weight": float(w_eff[f]), "typical_activation": float(typical[f]),
                 "label": table.get(str(f), {}).get("label", "")} for f, c in top]
    return top, evidence


def main() -> int:  # noqa: PLR0915 - one linear driver
    from monitor.logging_setup import configure_logging
    from monitor.pack.loader import SAE_WEIGHTS, file_sha256, load_pack

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--questions", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--datasets-root", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--dry-run", type=int, default=None, metavar="LAYER",
                    help="fit, calibrate and evaluate at LAYER and print the numbers; no pack needed, nothing written")
    ap.add_argument("--extract-only", type=int, default=None, metavar="LAYER",
                    help="only cache the per-token residuals at LAYER (no pack needed: start it while the SAE trains)")
    args = ap.parse_args()
    configure_logging(fmt="console", level="info")
    pack_dir = ROOT / "classifiers" / "packs" / args.model
    work = ROOT / "var" / "dense" / args.model
    sets = build_sets(None, work, args.n, args.questions)
    by_name = {f.name: f for f in FRAMINGS}
    benign = chat_transcripts(_benign(Path(args.datasets_root)), "benign_chat")
    harmless = harmless_answers(Path(args.datasets_root), N_HARMLESS)
    if args.extract_only is not None:
        tokens = Tokens(args.model, work, args.extract_only, args.threads)
        needed = {n for c in SHIP.values() for f in [by_name[c]] for n in (*f.train_set.split("+"), *f.held_out)}
        for n in sorted(needed, key=lambda n: sum(len(m["content"]) for t in sets[n] for m in t.messages)):
            tokens.get(n, sets[n])
        tokens.get("benign_chat", benign)
        tokens.get("hh_rlhf_harmless_refusals", harmless)
        return 0
    pack = None if args.dry_run is not None else load_pack(pack_dir, check_probes=False)
    layer = args.dry_run if pack is None else int(pack.hook_name.split(".")[1])
    tokens = Tokens(args.model, work, layer, args.threads)
    tok_benign = tokens.get("benign_chat", benign)
    tok_harmless = tokens.get("hh_rlhf_harmless_refusals", harmless)
    records, rows, curves = [], [], []
    for concept, framing in SHIP.items():
        fr = by_name[framing]
        ts = transcripts_of(fr, sets)
        tok = concat([tokens.get(n, sets[n]) for n in fr.train_set.split("+")])
        y = np.array([t.label for t in ts])
        groups = [t.group for t in ts]
        val = np.array([group_unit("study", g, 0) < 0.2 for g in groups])
        train_idx, val_idx = np.flatnonzero(~val), np.flatnonzero(val)
        t0 = time.perf_counter()
        # rows and window chosen together on the in-source validation split (never a held-out source)
        val_auc: dict[str, float] = {}
        fits: dict[str, tuple[DenseFit, np.ndarray]] = {}
        for rows_kind in ROWS:
            f = fit_dense(tok, y, groups, train_idx, layer, rows=rows_kind)
            lg = token_logits(tok, f.w, f.b)
            fits[rows_kind] = (f, lg)
            for r in READINGS:
                val_auc[f"{rows_kind}/{r.name}"] = auroc(reading_scores(lg, tok, val_idx, r), y[val_idx])
        best = max(val_auc, key=lambda k: val_auc[k])
        rows_kind, reading_name = best.split("/")
        fit, logits = fits[rows_kind]
        reading: Reading = next(r for r in READINGS if r.name == reading_name)
        r_val = reading_scores(logits, tok, val_idx, reading)
        r_benign = reading_scores(token_logits(tok_benign, fit.w, fit.b), tok_benign, range(len(benign)), reading)
        cal = calibrate_scores(r_val[y[val_idx] == 0], r_benign, reading)
        thr = cal.thresholds[fpr_key(0.01)]
        r_harm = reading_scores(token_logits(tok_harmless, fit.w, fit.b), tok_harmless, range(len(harmless)), reading)
        tfidf = train_tfidf_baseline(assistant_texts([ts[i] for i in train_idx]), y[train_idx],
                                     [groups[i] for i in train_idx])
        held: dict[str, Any] = {}
        for h in fr.held_out:
            th = tokens.get(h, sets[h])
            yh = np.array([t.label for t in sets[h]])
            rh = reading_scores(token_logits(th, fit.w, fit.b), th, range(len(sets[h])), reading)
            held[h] = {**evaluate(rh, yh), "tfidf_auroc": round(auroc(tfidf.score_transcripts(sets[h]), yh), 4),
                       "alert_rate_pos": round(float(np.mean(rh[yh == 1] >= thr)), 3),
                       "alert_rate_neg": round(float(np.mean(rh[yh == 0] >= thr)), 3)}
            curves.append(RocCurve(f"{concept} -> {h}", rh, yh))
        alternatives = {}
        for kind, (f_alt, _) in fits.items():  # the other row kind at its own best window: reported, not shipped
            if kind == rows_kind:
                continue
            r_alt = next(r for r in READINGS if f"{kind}/{r.name}" == max(
                (k for k in val_auc if k.startswith(kind + "/")), key=lambda k: val_auc[k]))
            alternatives[f"{kind}/{r_alt.name}"] = {
                h: round(auroc(reading_scores(token_logits(tokens.get(h, sets[h]), f_alt.w, f_alt.b),
                                              tokens.get(h, sets[h]), range(len(sets[h])), r_alt),
                               np.array([t.label for t in sets[h]])), 4) for h in fr.held_out}
        met = all(c["auroc"] >= GOAL_AUROC[concept] and c["tpr_at_1pct_fpr"] >= 0.5
                  and c["auroc"] - c["tfidf_auroc"] >= 0.25 for c in held.values())
        if pack is None:
            log.info("dry_run", concept=concept, rows=rows_kind, window=reading.name, val_auc=val_auc, held=held, met=met,
                     alternatives=alternatives,
                     benign_fpr=cal.benign_fpr, harmless=round(float(np.mean(r_harm >= thr)), 3), C=fit.probe.C)
            continue
        top, evidence = explain(fit, pack.sae, tok, [int(i) for i in train_idx if y[i] == 1], pack.features)
        metrics = {"in_source_val_auroc_by_window": {k: round(v, 4) for k, v in val_auc.items()},
                   "held_out_auroc_not_shipped_rows": alternatives,
                   "in_source_val": evaluate(r_val, y[val_idx]), "held_out": held,
                   "benign_alert_rate_at_1pct": cal.benign_fpr.get(fpr_key(0.01)),
                   "harmless_answer_alert_rate_at_1pct": round(float(np.mean(r_harm >= thr)), 3),
                   "harmless_answer_n": len(harmless), "meets_goal": met,
                   "goal": f"held-out AUROC >= {GOAL_AUROC[concept]}, TPR@1%FPR >= 0.5, +0.25 over tf-idf"}
        training = {"framing": fr.name, "sets": fr.train_set.split("+"), "n_train_transcripts": int(train_idx.size),
                    "rows": {"mean": "each answer's mean residual", "last": "each answer's last token"}.get(
                        rows_kind, f"up to {TOKENS_PER_ITEM} answer tokens per transcript"),
                    "C": fit.probe.C, "cv_auroc": round(fit.probe.cv_auroc, 4),
                    "split": "group_unit('study', group, seed 0) < 0.2 -> validation",
                    "calibration": {"window": reading.to_json(), "n_negatives": cal.n_negatives,
                                    "n_benign": cal.n_benign, "achieved_fpr": cal.achieved_fpr},
                    "residuals": "bf16 weights and forward (the guard scores fp32)"}
        records.append(ProbeRecord(
            name=concept, concept=concept, pooling="token", weights=np.zeros(pack.d_sae, np.float32), bias=fit.b,
            thresholds=cal.thresholds, top_features=top, metrics=metrics, training=training,
            extra={"layer": layer, "runtime_window": reading.to_json(),
                   "score": "per-token sigmoid(x_t @ w + b) on the raw residual at the hook; " + describe(reading),
                   "top_feature_evidence": evidence},
            resid_weights=fit.w))
        rows.append((concept, fr.name, reading, metrics, training))
        log.info("shipped", concept=concept, framing=fr.name, window=reading.name, meets_goal=met,
                 held_out={h: c["auroc"] for h, c in held.items()}, seconds=round(time.perf_counter() - t0))
    if pack is None:
        return 0
    sae_sha = file_sha256(pack_dir / "sae" / SAE_WEIGHTS)
    save_probes(pack_dir / "probes", records, pack.hook_name, extra={
        "sae_sha256": sae_sha, "feature_basis": "resid", "model_weights_sha256": pack.manifest.model.weights_sha256,
        "trained_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "OMP_NUM_THREADS=1 .venv/bin/python ops/research/dense_ship.py " + " ".join(sys.argv[1:])})
    out = pack_dir / "probes"
    roc_png(out / "roc_shipped.png", curves, title=f"{args.model}: shipped dense probes, held-out sources (runtime reading)")
    (out / "SHIPPED.md").write_text(shipped_md(rows, len(benign)), encoding="utf-8")
    saved = json.loads((out / "dense_study.json").read_text())
    write_report(out, saved["meta"], saved["rows"], work)
    return 0


def _benign(root: Path) -> list[tuple[dict[str, str], ...]]:
    from classifiers.features.plan import benign_chats

    return benign_chats(root, N_BENIGN)


def window_words(reading: Reading) -> str:
    if reading.at == "response_end":
        return "end: last token" if reading.window == 1 else f"end: {reading.reduce} of the answer"
    return f"{reading.reduce} {reading.window}"


def describe(reading: Reading) -> str:
    if reading.at == "response_end":
        what = "the last answer token's score" if reading.window == 1 else \
            f"the {reading.reduce} of the answer's token scores (up to {reading.window})"
        return f"response score = {what}, read once when the answer has ended (policy at: response_end)"
    return f"response score = max over positions of the {reading.reduce} of the last {reading.window} token scores"


def shipped_md(rows: Sequence[tuple[str, str, Reading, dict[str, Any], dict[str, Any]]], n_benign: int) -> str:
    lines = ["## Shipped verdict probes (probes.json; dense, read at the SAE's hook)", "",
             "Each is scored as the guard scores it: per answer token, then the policy window "
             "(chosen on the in-source validation split), then max over the response; or, for a "
             "verdict read at the end (`at: response_end`), once on the window ending at the answer's "
             "last token. Thresholds "
             f"at 1% FPR over in-source validation negatives plus {n_benign} benign chats. "
             "Held-out cells: AUROC [95% CI] / TPR at that source's own 1% FPR / share of its "
             "positives (negatives) that cross the shipped 1% threshold / TF-IDF on the same rows.", "",
             "| concept | framing | window | in-source AUROC | held-out | benign alert rate | harmless answers alerted | goal |",
             "|---|---|---|---|---|---|---|---|"]
    for concept, framing, reading, m, _ in rows:
        held = "<br>".join(f"{h}: {c['auroc']:.3f} [{c['ci95'][0]:.2f}, {c['ci95'][1]:.2f}] / {c['tpr_at_1pct_fpr']:.2f} / "
                           f"{c['alert_rate_pos']:.2f} ({c['alert_rate_neg']:.2f}) / tf-idf {c['tfidf_auroc']:.3f}"
                           for h, c in m["held_out"].items())
        lines.append(f"| {concept} | {framing} | {window_words(reading)} | {m['in_source_val']['auroc']:.3f} | "
                     f"{held} | {m['benign_alert_rate_at_1pct']} | {m['harmless_answer_alert_rate_at_1pct']} | "
                     f"{'met' if m['meets_goal'] else 'not met'} |")
    lines += ["", "ROC of the shipped probes on their held-out sources: [roc_shipped](roc_shipped.png).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
