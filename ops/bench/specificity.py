"""Specificity of clamping each concept probe's top features: does it remove the concept
from what the model writes, without hurting neutral text?

    .venv/bin/python ops/bench/specificity.py [--pack classifiers/packs/smollm2-135m-instruct]
        [--datasets-root ../shared/datasets] [--n-prompts 3] [--n-neutral 3] [--top-k 5]

For each concept (deception, sycophancy, unsafe_code, bias): the probe's ``top_features``
(probes.json, first ``--top-k``) are clamped to ``--value`` (0 = ablate, error term kept)
at every position except 0 and special tokens, on concept-eliciting prompts (positive
transcripts of the concept's first training set, with the start of the positive answer as
the assistant prefix; see classifiers/interp/concept_prompts.py). Greedy continuations
without and with the clamp are re-read without it and scored by the probe over the
generated tokens; ``score_drop = 1 - mean(score_with) / mean(score_base)`` (``--headline
in_place``: the probe read at the clamped residual instead; both are in the detail lines).
``neutral_ppl_increase = ppl_with / ppl_base - 1`` on plain wiki text.
Prints one progress/detail line per concept, then ONE JSON line (the last):
``{concept: {"score_drop": f, "neutral_ppl_increase": f}}``. Exits 2 with a one-line
message when the pack or its probes are missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def fail(msg: str) -> int:
    print(f"specificity bench: {msg}", file=sys.stderr)
    return 2


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--pack", default="classifiers/packs/smollm2-135m-instruct")
    ap.add_argument("--sae", default=None, help="SAE directory overriding the pack's (its probes must match)")
    ap.add_argument("--probes-dir", default=None, help="default: <pack>/probes")
    ap.add_argument("--datasets-root", default=None, help="default: ../shared/datasets")
    ap.add_argument("--concepts", default=None,
                    help="comma-separated concepts (default: every registered concept)")
    ap.add_argument("--n-prompts", type=int, default=3)
    ap.add_argument("--n-neutral", type=int, default=3)
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--value", type=float, default=0.0)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--headline", default="rescored", choices=("rescored", "in_place"),
                    help="score_drop in the last line: continuations re-read without the clamp (default) or "
                         "the probe read at the clamped residual")
    args = ap.parse_args()

    pack = Path(args.pack)
    probes_dir = Path(args.probes_dir) if args.probes_dir else pack / "probes"
    if not args.sae and not (pack / "sae" / "cfg.json").is_file():
        return fail(f"no SAE in {pack}/sae (the guard pack is not trained yet)")
    if not (probes_dir / "probes.json").is_file():
        return fail(f"no probes: {probes_dir}/probes.json is missing (the pack's probes are not trained yet)")

    import torch

    torch.set_num_threads(args.threads)
    from classifiers.datasets import CONCEPTS, resolve_datasets_root
    from classifiers.interp.concept_prompts import concept_prompts, neutral_texts
    from classifiers.interp.from_probe import top_feature_ids
    from classifiers.interp.runtime import special_ids_of
    from classifiers.interp.studies.common import ProbeHead, Setup
    from classifiers.interp.studies.specificity import specificity
    from monitor.engine import Engine
    from monitor.guard.interventions import FeatureIntervention
    from monitor.model import load_model
    from monitor.sae_spec import load_sae

    t0 = time.perf_counter()
    pj = json.loads((probes_dir / "probes.json").read_text(encoding="utf-8"))
    by_concept: dict[str, str] = {}
    for name, body in (pj.get("probes") or {}).items():
        by_concept.setdefault(body.get("concept", name), name)
    concepts = [c for c in (args.concepts or ",".join(CONCEPTS)).split(",") if c]
    missing = [c for c in concepts if c not in by_concept]
    if missing:
        return fail(f"{probes_dir}/probes.json has no probe for {', '.join(missing)}")
    sae = load_sae(args.sae or str(pack / "sae"))
    hook = str(sae.cfg.metadata.hook_name)
    if pj.get("hook_name") and pj["hook_name"] != hook:
        return fail(f"probes read {pj['hook_name']} but the SAE is at {hook}")
    manifest = json.loads((pack / "manifest.json").read_text(encoding="utf-8")) if (pack / "manifest.json").is_file() else {}
    lm = load_model(str((manifest.get("model") or {}).get("id") or "smollm2-135m-instruct"))
    setup = Setup(lm.model, Engine.from_loaded(lm), sae, hook, special_ids_of(lm.tokenizer))
    root = resolve_datasets_root(args.datasets_root)
    tok = lm.tokenizer
    neutral = [list(tok(t, add_special_tokens=False)["input_ids"]) for t in neutral_texts(root, args.n_neutral)]
    summary = {}
    for concept in concepts:
        name = by_concept[concept]
        head = ProbeHead.from_pack(probes_dir, name, int(sae.cfg.d_sae))
        feats = top_feature_ids(pj, name, args.top_k)
        if not feats:
            return fail(f"probe {name!r} lists no top_features")
        prompts = [(p.label, p.token_ids(tok)) for p in concept_prompts(concept, root, args.n_prompts)]
        res = specificity(setup, head, FeatureIntervention.clamp(feats, args.value), prompts, neutral, args.max_tokens)
        detail = res.to_json()
        detail.pop("rows")
        print(json.dumps({"concept": concept, **detail, "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
        drop = res.score_drop if args.headline == "rescored" else res.score_drop_in_place
        summary[concept] = {"score_drop": round(drop, 4),
                            "neutral_ppl_increase": round(res.neutral_ppl_increase, 4)}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
