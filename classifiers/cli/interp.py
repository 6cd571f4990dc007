"""Interpretability commands: ``features search|contrast|neighbours|attribute|from-probe``
(added to the ``features`` group of :mod:`classifiers.cli.sae`), ``steer
sweep|ablate|specificity|contrastive`` and ``diag patch|logit-lens``.

Searches print a table with each feature's evidence (``--json`` for JSON). Studies and
diagnostics print one JSON object and save a PNG under ``--out-dir`` (default
``var/studies``). Everything runs on the slow TransformerLens path: keep prompt sets small
on a CPU. The library is :mod:`classifiers.interp`.
"""

from __future__ import annotations

import argparse
from typing import Any

from classifiers.cli.interp_context import (
    add_common,
    add_prompts,
    emit,
    encode_items,
    load_context,
    read_prompt_items,
    read_prompt_list,
)
from classifiers.cli.interp_studies import (
    run_ablate,
    run_contrastive,
    run_logit_lens,
    run_patch,
    run_specificity,
    run_sweep,
)

OUT_DIR = "var/studies"


def _subgroup(subparsers: Any, name: str, help_text: str, dest: str) -> Any:
    """The sub-action set of top-level command ``name``; created when nobody made it yet."""
    parser = subparsers.choices.get(name)
    if parser is None:
        parser = subparsers.add_parser(name, help=help_text)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return parser.add_subparsers(dest=dest, metavar="ACTION")


def register(subparsers: Any) -> None:
    f = _subgroup(subparsers, "features", "inspect SAE features of a guard pack", "features_cmd")
    s = f.add_parser("search", help="features most active on example prompts, ranked against their density")
    add_common(s)
    add_prompts(s, chat_default=True, file_flag="--examples")
    s.add_argument("--baseline", default=None, help="neutral prompt file: adds a lift ratio vs these")
    s.add_argument("--pooling", default="max", choices=("max", "mean", "last"))
    s.add_argument("--top", type=int, default=10)
    _full_flag(s)
    s.set_defaults(func=run_search)

    c = f.add_parser("contrast", help="features that differ most between positive and negative prompts")
    add_common(c)
    c.add_argument("--pos", required=True, help="positive prompt file")
    c.add_argument("--neg", required=True, help="negative prompt file")
    c.add_argument("--raw", dest="chat", action="store_false", default=True, help="raw text, no chat template")
    c.add_argument("--pooling", default="max", choices=("max", "mean", "last"))
    c.add_argument("--direction", default="pos", choices=("pos", "neg", "both"))
    c.add_argument("--top", type=int, default=10)
    _full_flag(c)
    c.set_defaults(func=run_contrast)

    n = f.add_parser("neighbours", help="nearest features by decoder-direction cosine (itself first)")
    add_common(n)
    n.add_argument("id", type=int)
    n.add_argument("--top", type=int, default=10)
    _full_flag(n)
    n.set_defaults(func=run_neighbours)

    a = f.add_parser("attribute", help="features whose ablation changes logit[target] - logit[foil] most")
    add_common(a)
    add_prompts(a, chat_default=False)
    a.add_argument("--target", required=True, help='target completion, e.g. " sad"')
    a.add_argument("--foil", required=True, help='foil completion, e.g. " happy"')
    a.add_argument("--candidates", type=int, default=20, help="features ablated exactly (ranked by the linear estimate)")
    a.add_argument("--sign", default="target", choices=("target", "foil", "both"))
    a.add_argument("--estimate-only", action="store_true", help="skip the exact ablations")
    a.add_argument("--top", type=int, default=10)
    _full_flag(a)
    a.set_defaults(func=run_attribute)

    fp = f.add_parser("from-probe", help="the features a probe's weights rely on")
    add_common(fp, probes=True)
    fp.add_argument("name", help="probe name (key in probes.json)")
    fp.add_argument("--by", default="contribution", choices=("contribution", "weight", "abs"))
    fp.add_argument("--top", type=int, default=10)
    _full_flag(fp)
    fp.set_defaults(func=run_from_probe)

    st = _subgroup(subparsers, "steer", "intervention studies: sweep, ablation, specificity, contrastive", "steer_cmd")
    sw = st.add_parser("sweep", help="clamp (or steer) one feature to several values; outputs side by side")
    add_common(sw)
    add_prompts(sw, chat_default=True)
    sw.add_argument("--feature", type=int, required=True)
    sw.add_argument("--values", default="0,1,5,10,50", help="comma-separated values")
    sw.add_argument("--mode", default="clamp", choices=("clamp", "steer"))
    _study_opts(sw)
    sw.set_defaults(func=run_sweep)

    ab = st.add_parser("ablate", help="normal vs ablated outputs over a prompt set")
    add_common(ab)
    add_prompts(ab, chat_default=True)
    ab.add_argument("--features", dest="ablate", required=True, help="comma-separated feature ids")
    _study_opts(ab)
    ab.set_defaults(func=run_ablate)

    sp = st.add_parser("specificity", help="probe score on concept prompts vs neutral perplexity, with/without")
    add_common(sp, probes=True)
    add_prompts(sp, chat_default=True)
    sp.add_argument("--concept", required=True, help="probe name / concept (deception, sycophancy, ...)")
    sp.add_argument("--clamp", default=None, help="feature ids to clamp (default: the probe's top features)")
    sp.add_argument("--top-k", type=int, default=5, help="how many of the probe's top features (default 5)")
    sp.add_argument("--value", type=float, default=0.0, help="clamp value (default 0: ablate)")
    sp.add_argument("--n", type=int, default=4, help="concept prompts taken from the datasets")
    sp.add_argument("--n-neutral", type=int, default=4, help="neutral texts for perplexity")
    sp.add_argument("--datasets-root", default=None)
    _study_opts(sp)
    sp.set_defaults(func=run_specificity)

    cs = st.add_parser("contrastive", help="steering from sparse contrastive features vs mean-difference (CAA)")
    add_common(cs, probes=True)
    cs.add_argument("--pairs", required=True, help='.jsonl of {"pos": ..., "neg": ...}')
    cs.add_argument("--raw", dest="chat", action="store_false", default=True)
    cs.add_argument("--k", type=int, default=8, help="sparse features selected")
    cs.add_argument("--positions", type=int, default=3, help="important positions per pair")
    cs.add_argument("--strengths", default="0.5,1,2", help="comma-separated multiples of each vector")
    cs.add_argument("--probe", default=None, help="probe to report the score shift of")
    cs.add_argument("--n-neutral", type=int, default=3)
    cs.add_argument("--datasets-root", default=None)
    cs.add_argument("--no-logistic", action="store_true")
    _study_opts(cs)
    cs.set_defaults(func=run_contrastive)

    dg = _subgroup(subparsers, "diag", "diagnostics: activation patching, logit lens", "diag_cmd")
    pa = dg.add_parser("patch", help="restore clean residuals into a corrupted run, per layer and position")
    add_common(pa)
    pa.add_argument("--clean", required=True)
    pa.add_argument("--corrupted", required=True)
    pa.add_argument("--target", default=None, help="metric: logit[target] - logit[foil] at the last position")
    pa.add_argument("--foil", default=None)
    pa.add_argument("--probe", default=None, help="metric: this probe's logit at the last position instead")
    pa.add_argument("--probes-dir", default=None, help="probes directory (default: <pack>/probes)")
    pa.add_argument("--kind", default="resid_pre", choices=("resid_pre", "resid_post"))
    pa.add_argument("--layers", default=None, help="comma-separated layers (default all)")
    pa.add_argument("--chat", action="store_true", help="render as a user turn with the chat template")
    pa.add_argument("--out-dir", default=OUT_DIR)
    pa.set_defaults(func=run_patch)

    ll = dg.add_parser("logit-lens", help="top tokens of the residual at every layer (+ a probe's direction)")
    add_common(ll, probes=True)
    ll.add_argument("--prompt", required=True)
    ll.add_argument("--chat", action="store_true")
    ll.add_argument("--position", type=int, default=-1)
    ll.add_argument("--target", action="append", default=[], help="token text whose probability to track")
    ll.add_argument("--probe", default=None, help="also show this probe's direction (tokens, per-layer projection)")
    ll.add_argument("--feature", type=int, default=None, help="also show this feature's decoder direction")
    ll.add_argument("--top", type=int, default=5)
    ll.add_argument("--out-dir", default=OUT_DIR)
    ll.set_defaults(func=run_logit_lens)


def _full_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--full", action="store_true", help="every top context per feature, as 'features show' prints them")


def _study_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-tokens", type=int, default=24)
    p.add_argument("--out-dir", default=OUT_DIR, help=f"where the PNG goes (default {OUT_DIR})")


def _need_sae(ctx: Any) -> None:
    from monitor.cli import CliError

    if ctx.sae is None:
        raise CliError("no SAE loaded")


def _evidence_table(rows: list[Any], cols: list[tuple[str, str]], full: dict[str, Any] | None = None) -> list[str]:
    """One line of numbers per feature, then its evidence: one line, or with ``full`` (the
    parsed features.json) every top context as ``features show`` prints them."""
    from classifiers.sae.features import format_feature

    lines = []
    for r in rows:
        vals = "  ".join(f"{name}={getattr(r, attr):.4g}" if isinstance(getattr(r, attr), float)
                         else f"{name}={getattr(r, attr)}" for name, attr in cols if getattr(r, attr) is not None)
        lines.append(f"#{r.id:<6d} {vals}")
        if full is None:
            lines.append(f"         {r.evidence.line()}")
        else:
            entry = (full.get("features") or {}).get(str(r.id))
            lines += [f"         {line.strip()}" for line in format_feature(r.id, entry, full.get("n_tokens"))]
    return lines


def _full(args: argparse.Namespace, ctx: Any) -> dict[str, Any] | None:
    return ctx.features if getattr(args, "full", False) else None


# -- features ---------------------------------------------------------------------------------
def run_search(args: argparse.Namespace) -> int:
    from classifiers.interp.prompts import read_prompts
    from classifiers.interp.search_examples import search_by_examples

    ctx = load_context(args)
    prompts = read_prompt_items(args, "example")
    enc = encode_items(ctx, prompts, args.chat)
    base = encode_items(ctx, list(read_prompts(args.baseline)), args.chat) if args.baseline else []
    hits = search_by_examples(enc, ctx.features, args.top, base, args.pooling)
    head = f"{len(hits)} features over {len(prompts)} prompts (score = mean_act x log(1/density)" + \
        (" x lift/(1+lift))" if base else ")")
    emit(args, {"hits": [h.to_json() for h in hits]},
         [head] + _evidence_table(hits, [("score", "score"), ("mean_act", "mean_act"),
                                         ("frac", "frac_prompts"), ("lift", "lift")], _full(args, ctx)))
    return 0


def run_contrast(args: argparse.Namespace) -> int:
    from classifiers.interp.prompts import PromptFileError, read_prompts
    from classifiers.interp.search_contrastive import search_contrastive
    from monitor.cli import CliError

    ctx = load_context(args)
    try:
        pos, neg = read_prompts(args.pos), read_prompts(args.neg)
    except PromptFileError as exc:
        raise CliError(str(exc)) from None
    enc = [encode_items(ctx, list(ps), args.chat) for ps in (pos, neg)]
    hits = search_contrastive(enc[0], enc[1], ctx.features, ctx.decode, args.top, args.pooling, args.direction)
    lines = [f"{len(hits)} features, {len(pos)} positive vs {len(neg)} negative prompts (delta of {args.pooling}-pooled)"]
    for h in hits:
        lines += _evidence_table([h], [("delta", "delta"), ("t", "t"), ("pos", "mean_pos"), ("neg", "mean_neg")],
                                 _full(args, ctx))
        lines += [f"         at prompt {p.prompt} pos {p.position} {p.token!r} (+{p.delta:.3g})" for p in h.positions]
    emit(args, {"hits": [h.to_json() for h in hits]}, lines)
    return 0


def run_neighbours(args: argparse.Namespace) -> int:
    from classifiers.interp.neighbours import neighbours
    from monitor.cli import CliError

    ctx = load_context(args)
    try:
        nb = neighbours(ctx.sae.W_dec, args.id, ctx.features, args.top)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    emit(args, {"neighbours": [x.to_json() for x in nb]}, _evidence_table(nb, [("cos", "cosine")], _full(args, ctx)))
    return 0


def run_attribute(args: argparse.Namespace) -> int:
    from classifiers.interp.attribution import attribute, single_token

    ctx = load_context(args)
    tok = ctx.lm.tokenizer
    target, foil = single_token(tok, args.target), single_token(tok, args.foil)
    notes = [f"note: {t!r} is several tokens; using its first, {ctx.decode(i)!r}"
             for t, i in ((args.target, target), (args.foil, foil)) if len(tok(t, add_special_tokens=False)["input_ids"]) > 1]
    out, lines = [], notes
    for label, ids in read_prompt_list(args, tok):
        res = attribute(ctx.lm.model, ctx.sae, ctx.hook_name, ids, target, foil, ctx.features, ctx.special_ids,
                        args.candidates, args.top, not args.estimate_only, args.sign)
        out.append(dict(res.to_json(), prompt=label))
        lines.append(f"{label!r}: logit[{ctx.decode(target)!r}] - logit[{ctx.decode(foil)!r}] = {res.clean_logit_diff:.3f}")
        lines += _evidence_table(list(res.features), [("effect", "effect"), ("est", "estimate"), ("act", "activation")],
                                 _full(args, ctx))
    emit(args, {"results": out}, lines)
    return 0


def run_from_probe(args: argparse.Namespace) -> int:
    from classifiers.interp.from_probe import probe_features
    from classifiers.probes.io import ProbeFileError, load_probes
    from monitor.cli import CliError

    ctx = load_context(args, need_sae=False)
    pdir = args.probes_dir or (ctx.pack_root / "probes" if ctx.pack_root else None)
    if pdir is None:
        raise CliError("no probes directory: pass --probes-dir or a --pack that exists")
    try:
        ps = load_probes(pdir)
    except (ProbeFileError, FileNotFoundError, TypeError) as exc:
        raise CliError(f"cannot load probes from {pdir}: {exc}") from None
    rec = next((r for r in ps.probes if r.name == args.name), None)
    if rec is None:
        raise CliError(f"no probe {args.name!r}; have {', '.join(r.name for r in ps.probes)}")
    feats = probe_features(rec, ctx.features, args.top, args.by)
    emit(args, {"probe": args.name, "features": [x.to_json() for x in feats]},
         [f"probe {args.name} ({rec.concept}, pooling {rec.pooling}), by {args.by}:"]
         + _evidence_table(feats, [("weight", "weight"), ("contribution", "contribution")], _full(args, ctx)))
    return 0
