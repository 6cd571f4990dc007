"""The shipped probe's run-time AUROC on a held-out source, split by a transcript field.

    python -m ops.research.probes.heldout_breakdown --concept sycophancy \
        --source sycophancy_pressure_replies --by domain,category

Reads the residual cache and the pack's probes like ``eval-probes``; prints one JSON line per
value of each field (``n``, ``auroc`` and its bootstrap 95% interval), then one for all.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ops.research.probes.studies import add_common_args, resolve_store


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    parser.add_argument("--concept", default="sycophancy")
    parser.add_argument("--source", default="sycophancy_pressure_replies", help="dataset[:domain]")
    parser.add_argument("--by", default="domain,category", help="meta fields to split by")
    args = parser.parse_args(argv)

    from classifiers.datasets import get_dataset, resolve_datasets_root
    from classifiers.features.bank import ResidualBank
    from classifiers.probes.basis import Basis, TokenFeatures
    from classifiers.probes.commands import load_pack_sae
    from classifiers.probes.external import report
    from classifiers.probes.framing import Source
    from classifiers.probes.io import load_probes
    from classifiers.probes.runtime_eval import probe_reading
    from classifiers.probes.ship import runtime_scores
    from classifiers.probes.sources_data import load_source
    from classifiers.probes.train import ProbeFit
    from monitor.logging_setup import configure_logging

    configure_logging()
    store = resolve_store(parser, args.store)
    pack = Path(args.pack)
    probes = {r.name: r for r in load_probes(pack / "probes").probes}
    if args.concept not in probes:
        parser.error(f"--concept {args.concept!r}: the pack has probes {sorted(probes)}")
    rec = probes[args.concept]
    dataset, _, domain = args.source.partition(":")
    try:
        get_dataset(dataset)
    except KeyError as exc:
        parser.error(f"--source: {exc.args[0]}")
    ps = load_pack_sae(pack / "sae")
    feats = TokenFeatures(ResidualBank(store), ps.sae, ps.layer)
    sd = load_source(Source(dataset, domain or None), resolve_datasets_root(args.datasets), feats.bank)
    if not sd.keys:
        parser.error(f"--source {args.source}: nothing of it is in the residual cache {store} (run `saeguard probe-cache`)")
    T, offsets = feats.tokens(Basis.parse(f"sae:{ps.layer}"), sd.keys)
    scores = runtime_scores(ProbeFit.saved(rec.weights, rec.bias), T, offsets, probe_reading(dict(rec.extra)))
    for field in filter(None, args.by.split(",")):
        values = np.asarray([str(t.meta.get(field)) for t in sd.transcripts])
        for value in sorted(set(values)):
            mask = values == value
            sys.stdout.write(json.dumps({"by": field, "value": value, **report(scores[mask], sd.y[mask])}) + "\n")
    sys.stdout.write(json.dumps({"by": "all", **report(scores, sd.y)}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
