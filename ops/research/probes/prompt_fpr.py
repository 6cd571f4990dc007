"""How often calibrated probe thresholds fire on the *prompt* tokens of benign requests.

The shipped thresholds are calibrated on responses (``probes.json`` -> ``metrics.calibration``);
a policy rule with ``scope: prompt`` reads the same probes on the user's text, where nothing
was measured. This runs the real guard (model, pack SAE, probes) over the prompts of benign
first-turn chats from the SAE corpus (the ones *after* the 300 used for calibration, so no
chat overlaps) and reports, per probe and window, the fraction of prompts on which
``max over prompt positions of pool(window) >= threshold`` -- the false-positive rate a
``scope: prompt`` rule gets. Prefill only: one forward per prompt, no generation.

    OMP_NUM_THREADS=1 python -m ops.research.probes.prompt_fpr \\
        --pack classifiers/packs/smollm2-135m-instruct --n 300 --threads 1

Prints progress on stderr and one JSON object as the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

CALIBRATION_CHATS = 300
"""How many benign chats (from the start of the seeded shuffle) the calibration used."""


def prompt_scores(lm: Any, guard: Any, prompts: Sequence[str]) -> list[np.ndarray]:
    """Per prompt: [n_scored_positions, n_probes] probe scores on the prompt's tokens,
    with the guard's own position rules (position 0, special tokens, sink-like rows skipped)."""
    from monitor.engine import Engine, SamplingParams
    from monitor.guard.guard import scope_by_prompt_length
    from monitor.policy.loader import load_policy_text
    from monitor.policy.packinfo import StaticPackInfo

    engine = Engine.from_loaded(lm)
    names = guard.probes.names
    empty = load_policy_text("name: measure\nmode: shadow\non_monitor_error: fail_open\nrules: []\n",
                             StaticPackInfo.build(int(guard.W_dec.shape[0]), {}))
    out = []
    for i, text in enumerate(prompts):
        ids = engine.render([{"role": "user", "content": text}])
        sess = guard.session(empty, f"p{i}", lambda _alert: None, scope_by_prompt_length(len(ids)), intervene=False)
        with guard.attach(engine.model, sess) as tap:
            list(engine.generation(ids, SamplingParams(max_tokens=1), taps=[tap]))
        rows = [[r.scores[n] for n in names] for r in sess.reports if r.scope == "prompt"]
        out.append(np.asarray(rows, dtype=np.float64).reshape(-1, len(names)))
        if (i + 1) % 50 == 0:
            sys.stderr.write(f"prompt_fpr: {i + 1}/{len(prompts)} prompts\n")
            sys.stderr.flush()
    return out


def fires(scores: np.ndarray, tokens: int, reduce: str, threshold: float) -> bool:
    """Whether a policy window (partial at the start) reaches ``threshold`` anywhere: the
    calibration's own reading (:func:`classifiers.probes.readings.response_scores`)."""
    from classifiers.probes.readings import Reading, response_scores

    if scores.size == 0:
        return False
    offsets = np.asarray([0, scores.size])
    return bool(response_scores(scores, offsets, Reading(tokens, reduce))[0] >= threshold)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", default="classifiers/packs/smollm2-135m-instruct")
    parser.add_argument("--n", type=int, default=300, help="benign prompts to score")
    parser.add_argument("--datasets", default=None, help="datasets root (default ../shared/datasets)")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import torch

    from classifiers.datasets import resolve_datasets_root
    from classifiers.features.plan import benign_chats
    from monitor.guard import Guard
    from monitor.model import load_model
    from monitor.pack import load_pack

    torch.set_num_threads(args.threads)
    root = resolve_datasets_root(args.datasets)
    chats = benign_chats(root, CALIBRATION_CHATS + args.n)[CALIBRATION_CHATS:]
    prompts = [c[0]["content"] for c in chats]
    lm = load_model(args.model)
    pack = load_pack(args.pack)
    pack.check_model(lm.spec, lm.weights_sha256)
    guard = Guard.from_pack(pack, lm.tokenizer, model_spec=lm.spec)
    per_prompt = prompt_scores(lm, guard, prompts)
    probes = {r.name: {**r.extra, "thresholds": dict(r.thresholds)} for r in pack.probes.probes} if pack.probes else {}
    result: dict[str, Any] = {}
    for j, name in enumerate(guard.probes.names):
        info = probes[name]
        window = info.get("runtime_window") or {"tokens": 1, "reduce": "max"}
        entry: dict[str, Any] = {"window": window, "response_calibrated": {}}
        for fpr, thr in sorted(info.get("thresholds", {}).items()):
            hit = [fires(s[:, j], int(window["tokens"]), str(window["reduce"]), float(thr)) for s in per_prompt]
            entry["response_calibrated"][fpr] = {"threshold": thr, "prompt_fpr": float(np.mean(hit))}
        result[name] = entry
    tokens = [int(s.shape[0]) for s in per_prompt]
    sys.stdout.write(json.dumps({"pack": args.pack, "n_prompts": len(prompts),
                                 "prompt_tokens_median": float(np.median(tokens)),
                                 "source": "benign SAE-corpus first-turn chats after the calibration ones",
                                 "probes": result}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
