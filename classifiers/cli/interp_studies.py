"""Handlers of ``saeguard steer sweep|ablate|specificity|contrastive`` and ``saeguard diag
patch|logit-lens`` (registered by :mod:`classifiers.cli.interp`). Each prints one JSON object
and saves a PNG under ``--out-dir``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from classifiers.cli.interp_context import load_context, out_path, read_prompt_list


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.replace(" ", "").split(",") if t]


def _floats(text: str) -> list[float]:
    return [float(t) for t in text.replace(" ", "").split(",") if t]


def _evidence(ctx: Any, ids: list[int]) -> list[dict[str, Any]]:
    """features.json evidence of the features a study touched."""
    from classifiers.interp.evidence import feature_evidence

    return [feature_evidence(ctx.features, f).to_json() for f in ids]


# -- steer ------------------------------------------------------------------------------------
def run_sweep(args: argparse.Namespace) -> int:
    from classifiers.interp import plots
    from classifiers.interp.studies.sweep import sweep

    ctx = load_context(args)
    setup = ctx.setup()
    values = _floats(args.values)
    results = []
    for i, (label, ids) in enumerate(read_prompt_list(args, ctx.lm.tokenizer)):
        res = sweep(setup, ids, args.feature, values, args.max_tokens, args.mode)
        rows = res.rows
        png = plots.sweep_png(out_path(args, f"sweep_f{args.feature}_{i}.png"), args.feature,
                              [r.value for r in rows], [r.kl for r in rows], [r.text for r in rows], label)
        results.append(dict(res.to_json(), prompt=label, png=str(png)))
    print(json.dumps({"evidence": _evidence(ctx, [args.feature]), "sweeps": results}, ensure_ascii=False))
    return 0


def run_ablate(args: argparse.Namespace) -> int:
    from classifiers.interp import plots
    from classifiers.interp.studies.ablation import ablation_study

    ctx = load_context(args)
    feats = _ints(args.ablate)
    res = ablation_study(ctx.setup(), read_prompt_list(args, ctx.lm.tokenizer), feats, args.max_tokens)
    png = plots.ablation_png(out_path(args, f"ablation_{'_'.join(map(str, feats))}.png"),
                             [r.prompt for r in res.rows], [r.kl for r in res.rows], [r.changed for r in res.rows],
                             f"ablating {feats}: {res.changed_fraction:.0%} of outputs changed")
    print(json.dumps(dict(res.to_json(), evidence=_evidence(ctx, feats), png=str(png)), ensure_ascii=False))
    return 0


def run_specificity(args: argparse.Namespace) -> int:
    import os

    from classifiers.datasets import resolve_datasets_root
    from classifiers.interp import plots
    from classifiers.interp.concept_prompts import concept_prompts, neutral_texts
    from classifiers.interp.from_probe import top_feature_ids
    from classifiers.interp.studies.specificity import specificity
    from monitor.cli import CliError
    from monitor.guard.interventions import FeatureIntervention

    ctx = load_context(args)
    head, pj = ctx.probe_head(args.concept, args.probes_dir)
    feats = _ints(args.clamp) if args.clamp else top_feature_ids(pj, args.concept, args.top_k)
    if not feats:
        raise CliError(f"probe {args.concept!r} lists no top_features; pass --clamp")
    root = resolve_datasets_root(args.datasets_root, os.environ.get("SAEGUARD_DATASETS"))
    tok = ctx.lm.tokenizer
    if args.prompt or args.prompt_file:
        prompts = read_prompt_list(args, tok)
    else:
        prompts = [(p.label, p.token_ids(tok)) for p in concept_prompts(args.concept, root, args.n)]
    neutral = [list(tok(t, add_special_tokens=False)["input_ids"]) for t in neutral_texts(root, args.n_neutral)]
    spec = FeatureIntervention.clamp(feats, args.value)
    res = specificity(ctx.setup(), head, spec, prompts, neutral, args.max_tokens)
    png = plots.specificity_png(
        out_path(args, f"specificity_{args.concept}.png"), f"{args.concept}: {spec.describe()}",
        {"base": [r.base_score for r in res.rows], "intervened": [r.score for r in res.rows],
         "in place": [r.score_in_place for r in res.rows]},
        {"base": res.neutral_ppl_base, "intervened": res.neutral_ppl})
    print(json.dumps(dict(res.to_json(), evidence=_evidence(ctx, feats), png=str(png)), ensure_ascii=False))
    return 0


def run_contrastive(args: argparse.Namespace) -> int:
    import os

    from classifiers.datasets import resolve_datasets_root
    from classifiers.interp import plots
    from classifiers.interp.concept_prompts import neutral_texts
    from classifiers.interp.contrastive_steering import contrastive_steering
    from classifiers.interp.prompts import PromptFileError, read_pairs, to_ids
    from monitor.cli import CliError

    ctx = load_context(args)
    tok = ctx.lm.tokenizer
    try:
        pairs = [(to_ids(tok, p, args.chat), to_ids(tok, n, args.chat)) for p, n in read_pairs(args.pairs)]
    except PromptFileError as exc:
        raise CliError(str(exc)) from None
    head = ctx.probe_head(args.probe, args.probes_dir)[0] if args.probe else None
    root = resolve_datasets_root(args.datasets_root, os.environ.get("SAEGUARD_DATASETS"))
    neutral = [list(tok(t, add_special_tokens=False)["input_ids"]) for t in neutral_texts(root, args.n_neutral)]
    methods = ("caa", "lstsq") if args.no_logistic else ("caa", "lstsq", "logistic")
    try:
        res = contrastive_steering(ctx.setup(), pairs, [n for _, n in pairs], neutral, args.k, args.positions,
                                   _floats(args.strengths), head, args.max_tokens, methods)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    def key(m: Any) -> str:
        return f"{m.name} x{m.strength:g}"

    metrics = {"neutral ppl": {"base": res.base_neutral_ppl, **{key(m): m.neutral_ppl for m in res.methods}},
               "projection shift": {key(m): m.projection_shift for m in res.methods}}
    if head is not None:
        metrics["probe shift"] = {key(m): m.probe_shift or 0.0 for m in res.methods}
    png = plots.compare_bars_png(out_path(args, "contrastive_steering.png"),
                                 f"features {list(res.features)}", metrics, log_panels=("neutral ppl",))
    print(json.dumps(dict(res.to_json(), evidence=_evidence(ctx, list(res.features)), png=str(png)), ensure_ascii=False))
    return 0


# -- diag -------------------------------------------------------------------------------------
def run_patch(args: argparse.Namespace) -> int:
    from classifiers.interp import plots
    from classifiers.interp.attribution import single_token
    from classifiers.interp.patching import activation_patching, logit_diff_metric, probe_metric
    from classifiers.interp.prompts import to_ids
    from monitor.cli import CliError

    if (args.probe is None) == (args.target is None or args.foil is None):
        raise CliError("pass either --target and --foil (logit difference) or --probe NAME (probe logit)")
    ctx = load_context(args, need_sae=args.probe is not None)
    tok = ctx.lm.tokenizer
    model = ctx.lm.model
    clean, corr = to_ids(tok, args.clean, args.chat), to_ids(tok, args.corrupted, args.chat)
    if args.probe:
        head, _ = ctx.probe_head(args.probe, args.probes_dir)
        metric = probe_metric(model, ctx.sae, ctx.hook_name, head.w, head.b)
        what = f"probe {args.probe} logit"
    else:
        metric = logit_diff_metric(model, single_token(tok, args.target), single_token(tok, args.foil))
        what = "logit diff"
    try:
        res = activation_patching(model, clean, corr, layers=_ints(args.layers) if args.layers else None,
                                  kind=args.kind, token_text=[ctx.decode(t) for t in clean], metric=metric)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    png = plots.heatmap_png(out_path(args, f"patch_{args.kind}.png"), res.recovered.tolist(),
                            [f"L{L}" for L in res.layers], [repr(t) for t in res.tokens],
                            f"{args.kind} patching: {what} recovered", "fraction recovered")
    print(json.dumps(dict(res.to_json(), metric=what, png=str(png)), ensure_ascii=False))
    return 0


def run_logit_lens(args: argparse.Namespace) -> int:
    from classifiers.interp import plots
    from classifiers.interp.attribution import single_token
    from classifiers.interp.logit_lens import logit_lens
    from classifiers.interp.prompts import to_ids

    ctx = load_context(args, need_sae=args.probe is not None or args.feature is not None)
    tok = ctx.lm.tokenizer
    ids = to_ids(tok, args.prompt, args.chat)
    targets = [single_token(tok, t) for t in args.target]
    direction = None
    if args.probe:
        head, _ = ctx.probe_head(args.probe, args.probes_dir)
        direction = head.w @ ctx.sae.W_dec.detach().float()
    elif args.feature is not None:
        direction = ctx.sae.W_dec.detach().float()[args.feature]
    res = logit_lens(ctx.lm.model, ids, ctx.decode, args.position, args.top, targets, direction)
    png = None
    if targets:
        png = plots.heatmap_png(out_path(args, "logit_lens.png"), [list(layer.target_probs) for layer in res.layers],
                                [layer.layer for layer in res.layers], list(res.targets),
                                f"logit lens at position {res.position} ({res.token!r})", "probability",
                                cmap="viridis", center=False)
    print(json.dumps(dict(res.to_json(), png=None if png is None else str(png)), ensure_ascii=False))
    return 0
