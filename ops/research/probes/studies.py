"""Shared pieces of the probe experiments that run outside ``train-probes``.

The experiment scripts are :mod:`.estimator_study`, :mod:`.likelihood_study`,
:mod:`.onpolicy_deception`, :mod:`.onpolicy_sycophancy` and :mod:`.heldout_breakdown`. They
share the common flags, the residual cache store they read, and (the on-policy ones) the
residuals of chats the model answered itself.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_PACK = "classifiers/packs/smollm2-135m-instruct"
#: Where ``saeguard probe-cache`` writes by default (``<cache root>/<model sha>/L...-c...``).
CACHE_GLOB = ("var/cache/resid", "*/L*")


def add_common_args(parser: argparse.ArgumentParser, store: bool = True) -> None:
    """``--datasets``, ``--pack`` and (optionally) ``--store``."""
    parser.add_argument("--datasets", default=None, help="datasets root (default ../shared/datasets)")
    parser.add_argument("--pack", default=DEFAULT_PACK)
    if store:
        parser.add_argument("--store", default=None,
                            help="residual cache store (default: the one store under var/cache/resid)")


def resolve_store(parser: argparse.ArgumentParser, explicit: str | None) -> Path:
    """``--store``, else the only store under var/cache/resid (a usage error otherwise)."""
    stores = [Path(explicit)] if explicit else sorted(Path(CACHE_GLOB[0]).glob(CACHE_GLOB[1]))
    if len(stores) != 1:
        parser.error(f"need exactly one residual cache store, found {[str(s) for s in stores]}: "
                     "run `saeguard probe-cache` or pass --store")
    return stores[0]


def chat_residuals(run: Any, layer: int, chats: Sequence[Sequence[dict[str, str]]], max_tokens: int,
                   batch: int = 8, progress: Callable[[str], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Residuals at ``layer`` of each chat's last (assistant) message: (X [tokens, d], offsets).

    Chats are rendered with the chat template and run in right-padded batches after the
    shared system-prompt KV (``run`` is an :class:`.onpolicy_sycophancy.Runner`).
    """
    import torch

    from classifiers.features.extract import base_prefix, residuals_batched
    from classifiers.features.render import render

    base = base_prefix(run.ff, run.sys_ids, layer + 1)
    rendered = [render(run.tok, list(c)) for c in chats]
    order = sorted(range(len(chats)), key=lambda j: len(rendered[j].ids))
    res: list[Any] = [None] * len(chats)
    t0 = time.perf_counter()
    for lo in range(0, len(order), batch):
        rows = order[lo : lo + batch]
        with torch.inference_mode():
            out = residuals_batched(run.lm.model, run.ff, [rendered[j] for j in rows], [layer], max_tokens, base)
        for j, r in zip(rows, out, strict=True):
            res[j] = r.layers[layer]
        if progress and (lo // batch) % 25 == 0:
            progress(f"features: {lo + len(rows)}/{len(chats)} ({time.perf_counter() - t0:.0f} s)")
    X = np.concatenate(res).astype(np.float32)
    offsets = np.concatenate([[0], np.cumsum([r.shape[0] for r in res])])
    return X, offsets
