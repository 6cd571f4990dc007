"""The extraction job: every set of a plan -> residual chunks on disk, resumable.

Run it in the background with ``OMP_NUM_THREADS=1`` (``saeguard probe-cache``); it logs one
structlog line per chunk (set, chunk, items, tokens/s, ETA) and skips chunks already on
disk, so a killed job picks up where it stopped. An item that appears in an earlier set of
the plan (e.g. BBQ's stereotyped answer, in both framings) is extracted only once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from classifiers.features.extract import base_prefix, residuals_batched, residuals_for_prompt_group
from classifiers.features.plan import Item, SetPlan
from classifiers.features.render import Rendered, SpanError, render
from classifiers.features.store import chunk_name, write_chunk

log = structlog.get_logger(__name__)


def _chunks(items: Sequence[Item], size: int) -> list[list[Item]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def plan_chunks(plans: Sequence[SetPlan], chunk_size: int) -> list[tuple[str, int, list[Item]]]:
    """(set name, chunk index, items) for every chunk, first occurrences of items only."""
    seen: set[str] = set()
    out = []
    for plan in plans:
        fresh = [it for it in plan.items if it.key not in seen]
        seen.update(it.key for it in plan.items)
        for index, chunk in enumerate(_chunks(fresh, chunk_size)):
            out.append((plan.name, index, chunk))
    return out


def _system_ids(tokenizer: Any) -> list[int]:
    """Ids of the default system turn the template adds (empty if there is none)."""
    probe = render(tokenizer, ({"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}))
    ids = list(probe.ids)
    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if end_id in ids[: probe.start] and ids.index(end_id) + 1 < probe.start:
        cut = ids.index(end_id) + 2  # the system turn's <|im_end|> and the newline after it
        return ids[:cut]
    return []


def run_extraction(
    lm: Any,
    plans: Sequence[SetPlan],
    out_dir: Path,
    layers: Sequence[int],
    max_content_tokens: int,
    chunk_size: int = 100,
    batch_tokens: int = 1024,
) -> int:
    """Extract every chunk of ``plans`` not yet in ``out_dir``; returns chunks written."""
    import torch

    from monitor.engine.fastpath import FastForward

    torch.set_num_threads(1)
    ff = FastForward(lm.model)
    stop = max(layers) + 1
    sys_ids = _system_ids(lm.tokenizer)
    base = base_prefix(ff, sys_ids, stop) if sys_ids else None
    work = plan_chunks(plans, chunk_size)
    todo = [(n, i, c) for n, i, c in work if not (out_dir / n / chunk_name(i, [x.key for x in c])).is_file()]
    log.info("extraction_start", chunks=len(work), todo=len(todo), layers=list(layers),
             max_content_tokens=max_content_tokens, out=str(out_dir))
    t0 = time.perf_counter()
    done_tokens = 0
    total_items = sum(len(c) for _, _, c in todo)
    done_items = 0
    for k, (name, index, chunk) in enumerate(todo):
        start = time.perf_counter()
        rendered: list[Rendered] = []
        keys: list[str] = []
        for item in chunk:
            try:
                rendered.append(render(lm.tokenizer, item.messages))
                keys.append(item.key)
            except SpanError as exc:
                log.warning("span_error_skipped", set=name, key=item.key, error=str(exc))
        groups: dict[tuple[int, ...], list[int]] = {}
        for j, r in enumerate(rendered):
            groups.setdefault(r.ids[: r.prefix_len], []).append(j)
        results: list[Any] = [None] * len(rendered)
        tokens = 0
        n_sys = len(sys_ids) if base else 0
        content = [min(r.n_content, max_content_tokens) for r in rendered]
        group_cost = sum(len(p) - n_sys for p in groups) + sum(content)
        batch_cost = sum(r.start - n_sys for r in rendered) + sum(content)
        # one batched forward runs ~1.6x more tokens/s than many small per-prompt ones
        if base is not None and batch_cost < 1.6 * group_cost:
            # short prompts: batch whole transcripts (after the system prompt) by length
            order = sorted(range(len(rendered)), key=lambda j: len(rendered[j].ids))
            batch: list[int] = []
            for j in order + [-1]:
                if j >= 0:
                    width = rendered[j].start - n_sys + min(rendered[j].n_content, max_content_tokens)
                    if not batch or (len(batch) + 1) * width <= batch_tokens:
                        batch.append(j)
                        continue
                res = residuals_batched(lm.model, ff, [rendered[b] for b in batch], layers,
                                        max_content_tokens, base)
                for b, got in zip(batch, res, strict=True):
                    results[b] = got
                    tokens += rendered[b].start - n_sys + len(got.ids)
                batch = [j]
        else:
            for prefix, members in groups.items():
                res = residuals_for_prompt_group(
                    lm.model, ff, [rendered[j] for j in members], layers, max_content_tokens, base
                )
                for j, got in zip(members, res, strict=True):
                    results[j] = got
                tokens += len(prefix) - n_sys + sum(len(got.ids) for got in res)
        path = out_dir / name / chunk_name(index, [x.key for x in chunk])
        write_chunk(path, keys, results, layers)
        done_tokens += tokens
        done_items += len(chunk)
        elapsed = time.perf_counter() - t0
        rate = done_items / max(elapsed, 1e-9)
        log.info("chunk_done", set=name, chunk=index, step=f"{k + 1}/{len(todo)}", items=len(keys),
                 tokens=tokens, tok_per_s=round(tokens / (time.perf_counter() - start), 1),
                 eta_min=round((total_items - done_items) / max(rate, 1e-9) / 60, 1))
    log.info("extraction_done", chunks_written=len(todo), seconds=round(time.perf_counter() - t0, 1))
    return len(todo)
