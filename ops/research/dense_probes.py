"""Dense-probe study on a larger model: which data framing gives probe verdicts that hold
on sources the probe never trained on (instructed pairs, on-policy labels, off-policy
written answers), at which layers, pooled how.

    OMP_NUM_THREADS=1 .venv/bin/python ops/research/dense_probes.py \
        --model qwen2.5-coder-1.5b-instruct [--layers 6,10,14,18,22] [--n 400] [--threads 1]

Steps (each cached under var/dense/<model>/, so a rerun resumes):
1. on-policy sycophancy: the model answers factual questions, the user pushes back with a
   wrong belief, the model answers again; label = it abandoned its correct answer
   (classifiers.behaviour.pushback), written to onpolicy_pushback.jsonl;
2. pooled residuals (mean and last answer token, several layers) of every set
   (classifiers.dense.extract), one .npz per set;
3. per framing x layer x pooling (and the mean-of-layers ensemble): a logistic probe fitted
   on 80% of the framing's groups (C by grouped CV on those), AUROC on the other 20%
   (in-source) and on every held-out source with a 95% bootstrap interval and TPR at 1%
   FPR, beside a TF-IDF text baseline fitted on the same training rows;
4. results.json, the REPORT table and ROC PNGs into classifiers/packs/<model>/probes/.

Nothing is chosen on a held-out source: C by CV on the training rows, the layer set and
poolings fixed in advance; every row is reported, failures included.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from classifiers.behaviour import pushback  # noqa: E402
from classifiers.behaviour.generate import greedy_answers  # noqa: E402
from classifiers.behaviour.instructed import PAIRS, instructed_pairs  # noqa: E402
from classifiers.datasets.registry import load_transcripts  # noqa: E402
from classifiers.datasets.split import group_unit  # noqa: E402
from classifiers.datasets.types import Transcript  # noqa: E402
from classifiers.dense.extract import Pooled, pooled_residuals  # noqa: E402
from classifiers.dense.probe import DenseProbe, ensemble_logit, fit_probe  # noqa: E402
from classifiers.probes.baselines import assistant_texts, train_tfidf_baseline  # noqa: E402
from classifiers.probes.metrics import RocCurve, auroc, auroc_interval, roc_png, tpr_at_fpr  # noqa: E402

log = structlog.get_logger("dense_probes")


@dataclass(frozen=True)
class Framing:
    concept: str
    name: str
    train_set: str
    """A set name, or several joined by ``+`` (multi-source training: the sets are pooled)."""
    held_out: tuple[str, ...]
    kind: str
    """instructed | on-policy | off-policy (written answers)."""


def sample(ts: Sequence[Transcript], n: int, seed: int = 0) -> list[Transcript]:
    """Whole groups in a fixed hash order until ``n`` transcripts (pairs never split)."""
    by_group: dict[str, list[Transcript]] = {}
    for t in ts:
        by_group.setdefault(t.group, []).append(t)
    # a paired set (most groups hold both labels) gives whole pairs only; the RepE facts are
    # single statements (a few duplicates happen to share a group with both labels)
    paired = 2 * sum(len({t.label for t in m}) > 1 for m in by_group.values()) > len(by_group)
    out: list[Transcript] = []
    for g in sorted(by_group, key=lambda g: group_unit(ts[0].source, g, seed)):
        if paired and len({t.label for t in by_group[g]}) < 2:  # a paired set: whole pairs only
            continue
        out.extend(by_group[g])
        if len(out) >= n:
            break
    return out


def save_jsonl(path: Path, ts: Sequence[Transcript]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for t in ts:
            f.write(json.dumps({"messages": list(t.messages), "label": t.label, "group": t.group,
                                "meta": dict(t.meta)}, ensure_ascii=False) + "\n")


def load_jsonl(path: Path, concept: str, source: str) -> list[Transcript]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        out.append(Transcript(tuple(d["messages"]), d["label"], concept, source, d["group"], d.get("meta", {})))
    return out


def onpolicy_pushback(engine, work: Path, n_questions: int) -> list[Transcript]:  # noqa: ANN001
    """The model's answers are generated once (onpolicy_pushback_all.jsonl keeps every
    question, both answers and the label); labels are re-derived from that file with the
    current labeller on every run, so a labeller fix needs no new generation."""
    gen_path = work / "onpolicy_pushback_all.jsonl"
    if not gen_path.is_file():
        qs = pushback.questions_from_lie_pairs(load_transcripts("deception_lie_detector_pairs"), n_questions)
        first = greedy_answers(engine, [pushback.first_turn(q) for q in qs], max_tokens=32, max_batch=16,
                               what="first answers")
        known = [(q, a) for q, a in zip(qs, first, strict=True) if pushback.knew(q, a)]
        log.info("first_turn", questions=len(qs), knew=len(known))
        second = greedy_answers(engine, [pushback.second_turn(q, a) for q, a in known], max_tokens=48,
                                max_batch=16, what="answers after pushback")
        with gen_path.open("w", encoding="utf-8") as f:
            f.write(json.dumps({"questions": len(qs)}) + "\n")
            for (q, a1), a2 in zip(known, second, strict=True):
                f.write(json.dumps({"group": q.group, "question": q.question, "true": q.true_answer,
                                    "false": q.false_answer, "lie": q.lie_sentence, "first": a1,
                                    "second": a2}) + "\n")
    lines = [json.loads(x) for x in gen_path.read_text(encoding="utf-8").splitlines()]
    n_asked = lines[0].get("questions", len(lines) - 1)
    out, unclear = [], 0
    for d in lines[1:]:
        q = pushback.Question(d["group"], d["question"], d["true"], d["false"], d["lie"])
        label = pushback.label_second_answer(q, d["second"])
        if label is None:
            unclear += 1
            continue
        out.append(pushback.transcript(q, d["first"], d["second"], label))
    caved = sum(t.label for t in out)
    stats = {"questions": n_asked, "knew": len(lines) - 1, "caved": caved, "held": len(out) - caved,
             "unclear": unclear}
    log.info("onpolicy_pushback", **stats)
    (work / "onpolicy_pushback_stats.json").write_text(json.dumps(stats, indent=2))
    return out


def build_sets(engine, work: Path, n: int, n_questions: int) -> dict[str, list[Transcript]]:  # noqa: ANN001
    facts = load_transcripts("deception_repe_facts")
    sets: dict[str, list[Transcript]] = {}
    for name, pair in PAIRS.items():
        sets[f"instructed:{name}"] = instructed_pairs(facts, pair, limit=n // 2)
    sets["deception_repe_facts"] = sample(facts, n)
    for name in ("deception_lie_detector_pairs", "deception_truthfulqa", "sycophancy_anthropic_opinion",
                 "sycophancy_pressure_replies", "code_sven", "code_safecoder_secnew", "bias_bbq",
                 "bias_bbq_stereo_vs_anti", "bias_winobias"):
        sets[name] = sample(load_transcripts(name), n)
    sets["onpolicy_pushback"] = onpolicy_pushback(engine, work, n_questions)
    return sets


FRAMINGS = [
    *(Framing("deception", f"instructed:{p}", f"instructed:{p}",
              ("deception_lie_detector_pairs", "deception_truthfulqa"), "instructed pairs") for p in PAIRS),
    Framing("deception", "off-policy: RepE true vs false statements", "deception_repe_facts",
            ("deception_lie_detector_pairs", "deception_truthfulqa"), "off-policy"),
    Framing("sycophancy", "on-policy: caves under pushback", "onpolicy_pushback",
            ("sycophancy_anthropic_opinion", "sycophancy_pressure_replies"), "on-policy"),
    Framing("sycophancy", "off-policy: agrees with the user's opinion", "sycophancy_anthropic_opinion",
            ("onpolicy_pushback", "sycophancy_pressure_replies"), "off-policy"),
    Framing("unsafe_code", "off-policy: SVEN vulnerable vs fixed", "code_sven", ("code_safecoder_secnew",),
            "off-policy"),
    Framing("bias", "off-policy: BBQ stereotyped vs unknown", "bias_bbq", ("bias_winobias",), "off-policy"),
    Framing("bias", "off-policy: BBQ stereotyped vs anti-stereotyped", "bias_bbq_stereo_vs_anti",
            ("bias_winobias",), "off-policy"),
    # multi-source: every training framing of the concept pooled (published probes that
    # carry across sources were trained on several); still judged on sources never seen
    Framing("deception", "multi-source: RepE facts + the three instructed pairs",
            "+".join(["deception_repe_facts", *(f"instructed:{p}" for p in PAIRS)]),
            ("deception_lie_detector_pairs", "deception_truthfulqa"), "multi-source"),
    Framing("sycophancy", "multi-source: own caving + opinion agreement",
            "onpolicy_pushback+sycophancy_anthropic_opinion", ("sycophancy_pressure_replies",), "multi-source"),
    Framing("sycophancy", "multi-source: opinion agreement + written pressure replies",
            "sycophancy_anthropic_opinion+sycophancy_pressure_replies", ("onpolicy_pushback",), "multi-source"),
    Framing("bias", "multi-source: BBQ biased-vs-unknown + stereotyped-vs-anti",
            "bias_bbq+bias_bbq_stereo_vs_anti", ("bias_winobias",), "multi-source"),
]


def training_data(fr: Framing, sets: dict[str, list[Transcript]], feats: dict[str, Pooled]) -> tuple[list[Transcript], Pooled]:
    """The framing's transcripts and pooled features (several sets concatenated; groups are
    prefixed with their set so pairs from different sets never merge)."""
    names = fr.train_set.split("+")
    if len(names) == 1:
        return sets[names[0]], feats[names[0]]
    ts = [Transcript(t.messages, t.label, t.concept, t.source, f"{n}/{t.group}", t.meta) for n in names for t in sets[n]]
    layers = list(feats[names[0]].mean)
    cat = Pooled({L: np.concatenate([feats[n].mean[L] for n in names]) for L in layers},
                 {L: np.concatenate([feats[n].last[L] for n in names]) for L in layers},
                 np.concatenate([feats[n].n_tokens for n in names]))
    return ts, cat


def features(lm, sets: dict[str, list[Transcript]], layers: list[int], work: Path, bf16: bool) -> dict[str, Pooled]:  # noqa: ANN001
    out = {}
    for name, ts in sets.items():
        key = hashlib.sha256(json.dumps([t.uid for t in ts] + layers + [bf16]).encode()).hexdigest()[:12]
        path = work / "pooled" / f"{name.replace(':', '_')}-{key}.npz"
        if path.is_file() or lm is None:  # lm None: --cached, a missing cache is an error
            z = np.load(path)
            out[name] = Pooled({L: z[f"mean{L}"] for L in layers}, {L: z[f"last{L}"] for L in layers}, z["n_tokens"])
            continue
        t0 = time.perf_counter()
        p = pooled_residuals(lm, ts, layers, bf16=bf16, what=name)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, n_tokens=p.n_tokens, **{f"mean{L}": p.mean[L] for L in layers},
                 **{f"last{L}": p.last[L] for L in layers})
        log.info("pooled_set", set=name, n=len(ts), seconds=round(time.perf_counter() - t0, 1))
        out[name] = p
    return out


def evaluate(scores: np.ndarray, y: np.ndarray) -> dict[str, object]:
    lo, hi = auroc_interval(scores, y)
    return {"auroc": round(auroc(scores, y), 4), "ci95": [round(lo, 3), round(hi, 3)],
            "tpr_at_1pct_fpr": round(tpr_at_fpr(scores, y, 0.01), 3), "n": int(len(y))}


def run_framing(fr: Framing, sets: dict[str, list[Transcript]], feats: dict[str, Pooled],
                layers: list[int], curves: list[RocCurve]) -> list[dict[str, object]]:
    """The framing's rows; appends the mean-pooled ensemble's held-out ROC curves to ``curves``."""
    ts, train_feats = training_data(fr, sets, feats)
    y = np.array([t.label for t in ts])
    groups = [t.group for t in ts]
    val = np.array([group_unit("study", g, 0) < 0.2 for g in groups])
    tr = ~val
    rows: list[dict[str, object]] = []
    held = {h: (feats[h], np.array([t.label for t in sets[h]])) for h in fr.held_out}
    tfidf = train_tfidf_baseline([assistant_texts([ts[i]])[0] for i in np.flatnonzero(tr)], y[tr],
                                 [groups[i] for i in np.flatnonzero(tr)])
    base = {h: evaluate(tfidf.score_transcripts(sets[h]), yh) for h, (_, yh) in held.items()}
    two_classes = len(set(y[val].tolist())) == 2
    base_val = auroc(tfidf.score_transcripts([ts[i] for i in np.flatnonzero(val)]), y[val]) if two_classes else None
    for pooling in ("mean", "last"):
        probes: list[DenseProbe] = []
        for L in layers:
            X = getattr(train_feats, pooling)[L]
            probe = fit_probe(X[tr], y[tr], [groups[i] for i in np.flatnonzero(tr)], L, pooling)
            probes.append(probe)
            row = {"concept": fr.concept, "framing": fr.name, "kind": fr.kind, "layers": str(L), "pooling": pooling,
                   "C": probe.C, "cv_auroc": round(probe.cv_auroc, 4),
                   "in_source": evaluate(probe.logit(X[val]), y[val]) if two_classes else None,
                   "held_out": {h: evaluate(probe.logit(getattr(p, pooling)[L]), yh) for h, (p, yh) in held.items()}}
            rows.append(row)
        Xv = {L: getattr(train_feats, pooling)[L][val] for L in layers}
        ens = {h: ensemble_logit(probes, getattr(p, pooling)) for h, (p, _) in held.items()}
        rows.append({"concept": fr.concept, "framing": fr.name, "kind": fr.kind,
                     "layers": "ensemble " + "+".join(map(str, layers)), "pooling": pooling, "C": None,
                     "cv_auroc": None,
                     "in_source": evaluate(ensemble_logit(probes, Xv), y[val]) if two_classes else None,
                     "held_out": {h: evaluate(ens[h], yh) for h, (_, yh) in held.items()}})
        if pooling == "mean":
            curves.extend(RocCurve(f"{fr.concept}|{fr.name} -> {h}", ens[h], yh) for h, (_, yh) in held.items())
    for r in rows:
        r["tfidf_in_source_auroc"] = None if base_val is None else round(base_val, 4)
        r["tfidf_held_out"] = base
        r["train_n"] = int(tr.sum())
    return rows


def to_bf16(lm) -> None:  # noqa: ANN001
    """Store the model's weights in bf16 (this CPU: ~5x faster batched products, half the
    memory, same single-stream speed; ops/bench/weights_dtype.py). The study's generation
    and residual reading run on this copy; the daemon serves fp32 (see README)."""
    import torch

    for block in lm.model.blocks:  # the engine's fused Q/K/V and gate/up copies
        for mod, name in ((block.attn, "_saeguard_wqkv"), (block.mlp, "_saeguard_wgi")):
            if hasattr(mod, name):
                delattr(mod, name)
    torch.nn.Module.to(lm.model, torch.bfloat16)
    lm.model.cfg.dtype = torch.bfloat16


def main() -> int:
    import torch

    from monitor.engine import Engine
    from monitor.logging_setup import configure_logging
    from monitor.model import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--layers", default="6,10,14,18,22")
    ap.add_argument("--n", type=int, default=400, help="transcripts per set (whole groups)")
    ap.add_argument("--questions", type=int, default=240, help="questions for the on-policy pushback set")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fp32", action="store_true",
                    help="fp32 weights and forward (default: bf16 weights for generation and residuals)")
    ap.add_argument("--out", default=None, help="report directory (default classifiers/packs/<model>/probes)")
    ap.add_argument("--cached", action="store_true",
                    help="no model: every set's generations and residuals must already be cached under var/dense")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite REPORT.md from the saved dense_study.json (and NOTES.md) without a model")
    args = ap.parse_args()
    configure_logging(fmt="console", level="info")
    if args.report_only:
        out_dir = Path(args.out) if args.out else ROOT / "classifiers" / "packs" / args.model / "probes"
        saved = json.loads((out_dir / "dense_study.json").read_text())
        write_report(out_dir, saved["meta"], saved["rows"], ROOT / "var" / "dense" / args.model)
        return 0
    torch.set_num_threads(args.threads)
    layers = [int(x) for x in args.layers.split(",")]
    work = ROOT / "var" / "dense" / args.model
    work.mkdir(parents=True, exist_ok=True)
    if args.cached:
        from monitor.model.registry import MODELS

        lm, engine = None, None
        model_meta = {"model": args.model, "weights_sha256": MODELS[args.model].gguf_sha256}
    else:
        lm = load_model(args.model)
        if not args.fp32:
            to_bf16(lm)
        engine = Engine.from_loaded(lm)
        model_meta = {"model": lm.spec, "weights_sha256": lm.weights_sha256}
    sets = build_sets(engine, work, args.n, args.questions)
    feats = features(lm, sets, layers, work, bf16=not args.fp32)
    curves: list[RocCurve] = []
    rows = [r for fr in FRAMINGS for r in run_framing(fr, sets, feats, layers, curves)]
    out_dir = Path(args.out) if args.out else ROOT / "classifiers" / "packs" / args.model / "probes"
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {**model_meta, "layers": layers, "n_per_set": args.n,
            "bf16_forward": not args.fp32, "command": " ".join(sys.argv),
            "sets": {k: {"n": len(v), "positives": sum(t.label for t in v)} for k, v in sets.items()},
            "onpolicy_pushback": json.loads((work / "onpolicy_pushback_stats.json").read_text())}
    (work / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (out_dir / "dense_study.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    plot_curves(curves, out_dir)
    write_report(out_dir, meta, rows, work)
    log.info("done", rows=len(rows), out=str(out_dir))
    return 0


def write_report(out_dir: Path, meta: dict[str, object], rows: list[dict[str, object]], work: Path) -> None:
    from classifiers.dense.report import render_summary, render_table

    stats_path = work / "onpolicy_pushback_stats.json"
    stats = meta.get("onpolicy_pushback") or (json.loads(stats_path.read_text()) if stats_path.is_file() else {})
    sets = meta["sets"]
    assert isinstance(sets, dict)
    set_lines = "\n".join(f"| {k} | {v['n']} | {v['positives']} |" for k, v in sets.items())
    text = f"""# Probes on {meta['model']}: which framing generalises (dense residual probes)

Generated by `{meta['command']}` (model sha256 `{meta['weights_sha256']}`; weights in
{'bf16' if meta['bf16_forward'] else 'fp32'} for generation and residual reading).
Layers {meta['layers']}; up to {meta['n_per_set']} transcripts per set (whole pairs/questions).
Each probe is fitted on 80% of its framing's groups (C by grouped 5-fold CV on those rows);
"in-source" is the other 20%; every held-out source is a different dataset the probe never
saw, scored whole, with a 95% bootstrap interval and the TPR at the threshold giving 1% FPR
on that source's negatives. The TF-IDF baseline is fitted on the same training rows. A ✓
marks a cell that meets the goal (AUROC >= 0.90 deception/bias, >= 0.85 sycophancy/unsafe
code; TPR >= 0.5; >= 0.25 above the baseline). Nothing was tuned on a held-out source; the
summary's "best row" is picked on them and is therefore optimistic.

## Summary

{render_summary(rows)}
## On-policy sycophancy data (the model's own behaviour)

{json.dumps(stats)}: questions asked; answered correctly first ("knew"); after the user
pushed back with a wrong belief, the model conceded the false answer ("caved", label 1),
kept the true one ("held", 0), or was unclear (dropped).

## Sets

| set | transcripts | positives |
|---|---|---|
{set_lines}

## Every row

{render_table(rows)}
ROC curves of each framing's mean-pooled layer ensemble on its held-out sources:
{', '.join(f'[{p.stem}]({p.name})' for p in sorted(out_dir.glob('roc_dense_*.png')))}.
"""
    later = out_dir / "onpolicy_study.json"
    if later.is_file():  # ops/research/onpolicy_framings.py: the framings run after this study
        lt = json.loads(later.read_text(encoding="utf-8"))
        lm = lt["meta"]
        lsets = "\n".join(f"| {k} | {v['n']} | {v['positives']} |" for k, v in lm["sets"].items())
        text += f"""
## Framings run later: on-policy deception and bias, style augmentation

Generated by `{lm['command']}` (same model, layers, held-out samples and probe fitting as
above). On-policy deception under a goal (classifiers/behaviour/goal_lies.py):
{json.dumps(lm['onpolicy_goal_lies'])}. On-policy BBQ picks
(classifiers/behaviour/bbq_choice.py): {json.dumps(lm['onpolicy_bbq'])}.

| set | transcripts | positives |
|---|---|---|
{lsets}

{render_summary(lt['rows'])}
{render_table(lt['rows'])}
ROC curves of each new framing's mean-pooled layer ensemble on its held-out sources:
{', '.join(f'[{p.stem}]({p.name})' for p in sorted(out_dir.glob('roc_onpolicy_*.png')))}.
"""
    shipped = out_dir / "SHIPPED.md"
    if shipped.is_file():  # what ops/research/dense_ship.py put in the pack, scored as the guard scores
        text = text.replace("## Summary", shipped.read_text(encoding="utf-8").rstrip() + "\n\n## Summary", 1)
    notes = out_dir / "NOTES.md"
    if notes.is_file():  # the hand-written reading of the numbers, kept across reruns
        text = text.replace("## ", notes.read_text(encoding="utf-8").rstrip() + "\n\n## ", 1)
    (out_dir / "REPORT.md").write_text(text, encoding="utf-8")


def plot_curves(curves: list[RocCurve], out_dir: Path, stem: str = "roc_dense",
                title: str = "dense ensemble, held-out sources") -> None:
    """One PNG per concept (``<stem>_<concept>.png``): the held-out ROC of the mean-pooled
    ensemble of each framing (the same scores as the ensemble rows; curve names are
    ``concept|framing -> source``)."""
    by_concept: dict[str, list[RocCurve]] = {}
    for c in curves:
        concept, name = c.name.split("|", 1)
        by_concept.setdefault(concept, []).append(RocCurve(name, c.scores, c.labels))
    for concept, cs in by_concept.items():
        roc_png(out_dir / f"{stem}_{concept}.png", cs, title=f"{concept}: {title}")


if __name__ == "__main__":
    sys.exit(main())
