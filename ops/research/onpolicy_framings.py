"""The probe framings the first dense study did not run, on the larger model: on-policy
deception under a goal, on-policy BBQ bias, and style-augmented instructed/off-policy
deception pairs beside their plain versions (same run, same held-out rows).

    OMP_NUM_THREADS=1 .venv/bin/python ops/research/onpolicy_framings.py \
        --model qwen2.5-coder-1.5b-instruct [--questions 240] [--bbq 480] [--n 400] [--threads 1]

Steps (each cached under var/dense/<model>/, so a rerun resumes):
1. on-policy deception (classifiers.behaviour.goal_lies): the model answers factual
   questions plainly, then under each goal prompt that rewards a wrong answer; label = it
   dropped the true answer it knew (1) vs kept it (0), both under the same goal. Questions
   come from lie-pair groups that are NOT in the held-out lie-pair sample;
2. on-policy bias (classifiers.behaviour.bbq_choice): the model picks an option for
   ambiguous BBQ questions; stereotyped pick (1) vs "unknown" (0), and vs the
   anti-stereotyped person (0);
3. style augmentation (classifiers.behaviour.style): the "pretend" instructed pairs and the
   RepE true/false statements, each in one of six surface styles, beside the plain sets;
4. pooled residuals and the same per-layer / ensemble probes, TF-IDF baselines and
   held-out rows as ops/research/dense_probes.py (its functions), written to
   classifiers/packs/<model>/probes/onpolicy_study.json and roc_onpolicy_<concept>.png.

Nothing is chosen on a held-out source; every row is reported.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import structlog

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "ops" / "research"))

from dense_probes import (  # noqa: E402
    Framing,
    features,
    plot_curves,
    run_framing,
    sample,
    save_jsonl,
    to_bf16,
)

from classifiers.behaviour import bbq_choice, goal_lies, pushback, style  # noqa: E402
from classifiers.behaviour.generate import greedy_answers  # noqa: E402
from classifiers.behaviour.instructed import PAIRS, instructed_pairs  # noqa: E402
from classifiers.datasets.registry import load_transcripts  # noqa: E402
from classifiers.datasets.split import group_unit  # noqa: E402
from classifiers.datasets.types import Transcript  # noqa: E402
from classifiers.probes.metrics import RocCurve  # noqa: E402

log = structlog.get_logger("onpolicy_framings")

DECEPTION_HELD = ("deception_lie_detector_pairs", "deception_truthfulqa")


def goal_lie_sets(engine, work: Path, held_groups: set[str], n_questions: int) -> dict[str, list[Transcript]]:  # noqa: ANN001
    gen = work / "onpolicy_goal_lies_all.jsonl"
    if not gen.is_file():
        pairs = [t for t in load_transcripts("deception_lie_detector_pairs") if t.group not in held_groups]
        qs = pushback.questions_from_lie_pairs(pairs, n_questions)
        first = greedy_answers(engine, [pushback.first_turn(q) for q in qs], max_tokens=32, max_batch=16,
                               what="plain answers")
        known = [q for q, a in zip(qs, first, strict=True) if pushback.knew(q, a)]
        log.info("plain_answers", questions=len(qs), knew=len(known))
        jobs = [(g, q) for g in goal_lies.GOALS.values() for q in known]
        answers = greedy_answers(engine, [goal_lies.goal_chat(g, q) for g, q in jobs], max_tokens=40,
                                 max_batch=16, what="answers under a goal")
        with gen.open("w", encoding="utf-8") as f:
            f.write(json.dumps({"questions": len(qs), "knew": len(known)}) + "\n")
            for (g, q), a in zip(jobs, answers, strict=True):
                f.write(json.dumps({"goal": g.name, "group": q.group, "question": q.question, "true": q.true_answer,
                                    "false": q.false_answer, "lie": q.lie_sentence, "answer": a}) + "\n")
    lines = [json.loads(x) for x in gen.read_text(encoding="utf-8").splitlines()]
    out: list[Transcript] = []
    stats: dict[str, dict[str, int]] = {}
    for d in lines[1:]:
        q = pushback.Question(d["group"], d["question"], d["true"], d["false"], d["lie"])
        label = goal_lies.label_goal_answer(q, d["answer"])
        s = stats.setdefault(d["goal"], {"lied": 0, "honest": 0, "unclear": 0})
        s["unclear" if label is None else ("lied" if label else "honest")] += 1
        if label is not None:
            out.append(goal_lies.transcript(goal_lies.GOALS[d["goal"]], q, d["answer"], label))
    summary = {**lines[0], "by_goal": stats}
    log.info("onpolicy_goal_lies", **summary)
    (work / "onpolicy_goal_lies_stats.json").write_text(json.dumps(summary, indent=2))
    return {"onpolicy_goal_lies": out, "onpolicy_goal_lies:no-goal": [goal_lies.without_goal(t) for t in out]}


def bbq_sets(engine, work: Path, n_items: int) -> dict[str, list[Transcript]]:  # noqa: ANN001
    items = bbq_choice.items(load_transcripts("bias_bbq"), load_transcripts("bias_bbq_stereo_vs_anti"))
    # whole templates in a fixed hash order (every name filling of a template, like the sets' sample)
    items = sorted(items, key=lambda i: (group_unit("bias_bbq", i.group, 0), i.example))[:n_items]
    gen = work / "onpolicy_bbq_all.jsonl"
    if not gen.is_file():
        answers = greedy_answers(engine, [i.chat() for i in items], max_tokens=24, max_batch=16, what="BBQ answers")
        with gen.open("w", encoding="utf-8") as f:
            for i, a in zip(items, answers, strict=True):
                f.write(json.dumps({"example": i.example, "answer": a}) + "\n")
    got = {d["example"]: d["answer"] for d in map(json.loads, gen.read_text(encoding="utf-8").splitlines())}
    pairs = [(i, got[i.example]) for i in items if i.example in got]
    counts: dict[str, int] = {}
    for i, a in pairs:
        c = str(bbq_choice.choice(i, a))
        counts[c] = counts.get(c, 0) + 1
    log.info("onpolicy_bbq", items=len(pairs), choices=counts)
    (work / "onpolicy_bbq_stats.json").write_text(json.dumps({"items": len(pairs), "choices": counts}, indent=2))
    return {f"onpolicy_bbq:{f}": bbq_choice.transcripts(pairs, f) for f in bbq_choice.FRAMINGS}


FRAMINGS = [
    Framing("deception", "on-policy: lies under a goal (goal in context)", "onpolicy_goal_lies", DECEPTION_HELD,
            "on-policy"),
    Framing("deception", "on-policy: lies under a goal (read without the goal)", "onpolicy_goal_lies:no-goal",
            DECEPTION_HELD, "on-policy"),
    Framing("deception", "instructed:pretend (plain)", "instructed:pretend", DECEPTION_HELD, "instructed pairs"),
    Framing("deception", "instructed:pretend, style-augmented", "instructed:pretend:style", DECEPTION_HELD,
            "style-augmented"),
    Framing("deception", "off-policy: RepE true vs false (plain)", "deception_repe_facts", DECEPTION_HELD,
            "off-policy"),
    Framing("deception", "off-policy: RepE true vs false, style-augmented", "deception_repe_facts:style",
            DECEPTION_HELD, "style-augmented"),
    Framing("deception", "multi-source: own goal lies + RepE, style-augmented",
            "onpolicy_goal_lies:no-goal+deception_repe_facts:style", DECEPTION_HELD, "multi-source"),
    Framing("bias", "on-policy: BBQ own pick, stereotyped vs unknown", "onpolicy_bbq:stereotyped-vs-unknown",
            ("bias_winobias",), "on-policy"),
    Framing("bias", "on-policy: BBQ own pick, stereotyped vs anti-stereotyped", "onpolicy_bbq:stereotyped-vs-anti",
            ("bias_winobias",), "on-policy"),
]


def main() -> int:
    import torch

    from monitor.engine import Engine
    from monitor.logging_setup import configure_logging
    from monitor.model import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--layers", default="6,10,14,18,22")
    ap.add_argument("--n", type=int, default=400, help="transcripts per written set (whole groups)")
    ap.add_argument("--questions", type=int, default=240, help="questions for the goal-lies set")
    ap.add_argument("--bbq", type=int, default=480, help="BBQ items asked")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="report directory (default classifiers/packs/<model>/probes)")
    args = ap.parse_args()
    configure_logging(fmt="console", level="info")
    torch.set_num_threads(args.threads)
    layers = [int(x) for x in args.layers.split(",")]
    work = ROOT / "var" / "dense" / args.model
    work.mkdir(parents=True, exist_ok=True)
    lm = load_model(args.model)
    to_bf16(lm)
    engine = Engine.from_loaded(lm)

    sets: dict[str, list[Transcript]] = {}
    for name in (*DECEPTION_HELD, "bias_winobias"):
        sets[name] = sample(load_transcripts(name), args.n)
    held_groups = {t.group for t in sets["deception_lie_detector_pairs"]}
    sets.update(goal_lie_sets(engine, work, held_groups, args.questions))
    sets.update(bbq_sets(engine, work, args.bbq))
    facts = load_transcripts("deception_repe_facts")
    sets["instructed:pretend"] = instructed_pairs(facts, PAIRS["pretend"], limit=args.n // 2)
    sets["instructed:pretend:style"] = style.augment(sets["instructed:pretend"])
    sets["deception_repe_facts"] = sample(facts, args.n)
    sets["deception_repe_facts:style"] = style.augment(sets["deception_repe_facts"])
    for name, ts in sets.items():
        save_jsonl(work / "onpolicy_sets" / f"{name.replace(':', '_')}.jsonl", ts)
    feats = features(lm, sets, layers, work, bf16=True)
    curves: list[RocCurve] = []
    rows = [r for fr in FRAMINGS for r in run_framing(fr, sets, feats, layers, curves)]
    out_dir = Path(args.out) if args.out else ROOT / "classifiers" / "packs" / args.model / "probes"
    meta = {"model": lm.spec, "weights_sha256": lm.weights_sha256, "layers": layers, "n_per_set": args.n,
            "bf16_forward": True, "command": " ".join(sys.argv),
            "sets": {k: {"n": len(v), "positives": sum(t.label for t in v)} for k, v in sets.items()},
            "onpolicy_goal_lies": json.loads((work / "onpolicy_goal_lies_stats.json").read_text()),
            "onpolicy_bbq": json.loads((work / "onpolicy_bbq_stats.json").read_text())}
    (out_dir / "onpolicy_study.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    plot_curves(curves, out_dir, stem="roc_onpolicy", title="new framings, held-out sources")
    log.info("done", rows=len(rows), out=str(out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
