"""Does the model's own likelihood of the assistant's answer separate the labels? (issue 4 idea)

No training: each transcript of the probe sources (same selection as ``train-probes``) is
scored by the **mean negative log-probability per token** of the assistant content under
SmolLM2, given the chat up to the assistant header: how surprised the model is by the answer.
High surprise is the positive direction: a false statement, vulnerable code or a
stereotyped sentence is expected to be *less* likely. Reported as AUROC per source; 0.5 is
chance and below 0.5 means the positive side is the *more* likely one.

    OMP_NUM_THREADS=2 python -m ops.research.probes.likelihood_study \\
        --concepts deception,unsafe_code,bias,sycophancy --threads 2

The content is cut at ``--max-chars`` characters (the long code functions; the probes read
192 tokens). One JSON line per source on stdout, then a summary line; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from ops.research.probes.studies import add_common_args, resolve_store


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    parser.add_argument("--concepts", default="deception,unsafe_code,bias,sycophancy")
    parser.add_argument("--max-chars", type=int, default=600)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import torch

    from classifiers.datasets import resolve_datasets_root
    from classifiers.features.bank import ResidualBank
    from classifiers.probes.framing import FRAMINGS
    from classifiers.probes.metrics import auroc
    from classifiers.probes.sources_data import load_sources
    from monitor.logging_setup import configure_logging
    from monitor.model import load_model
    from ops.research.probes.onpolicy_sycophancy import Runner

    configure_logging()
    torch.set_num_threads(args.threads)
    store = resolve_store(parser, args.store)
    t0 = time.perf_counter()
    root = resolve_datasets_root(args.datasets)
    bank = ResidualBank(store)
    run = Runner(load_model())
    summary: dict[str, dict[str, float]] = {}
    for concept in args.concepts.split(","):
        framing = FRAMINGS[concept]
        for name, sd in load_sources(framing.sources + framing.extra_eval, root, bank).items():
            prompts = [run.ids(t.messages[:-1]) for t in sd.transcripts]
            answers = [t.messages[-1]["content"][: args.max_chars] for t in sd.transcripts]
            surprise = -run.continuation_logprob(prompts, answers)
            value = round(auroc(surprise, sd.y), 3)
            summary.setdefault(concept, {})[name] = value
            sys.stdout.write(json.dumps({"concept": concept, "source": name, "n": int(sd.y.size),
                                         "auroc_mean_nll": value}) + "\n")
            sys.stdout.flush()
            sys.stderr.write(f"[likelihood_study] {name}: {value} ({time.perf_counter() - t0:.0f} s)\n")
    sys.stdout.write(json.dumps({"experiment": "likelihood_study", "auroc_mean_nll": summary,
                                 "max_chars": args.max_chars,
                                 "seconds": round(time.perf_counter() - t0, 1)}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
