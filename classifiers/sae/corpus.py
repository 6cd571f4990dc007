"""The SAE training corpus: read, render with the chat template, tokenize once, split.

Documents come from ``sae_corpus_*`` (see :mod:`classifiers.sae.sources`) plus the
transcripts of every registered *training* dataset (capped per set). Chats are rendered
with the tokenizer's chat template, as the daemon sees them; plain text is tokenized as
is. Long documents are cut into windows of ``max_len`` tokens (each window is a fresh
context: its position 0 is an attention sink too). The order is shuffled with a seed and
the first ``eval_tokens`` worth of documents form the held-out evaluation slice.

The result is saved once as ``corpus.safetensors`` (flat int32 token ids + offsets)
beside ``corpus.json`` (sources, file hashes, split sizes).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import torch
from safetensors.torch import load_file, save_file

from classifiers.sae import sources

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class CorpusConfig:
    datasets_root: Path
    """Root of the shared datasets (``../shared/datasets``)."""
    max_len: int = 512
    """Longest context; longer documents are split into windows of this many tokens."""
    min_len: int = 8
    """Shorter documents/windows are dropped."""
    per_training_set: int = 800
    """Transcripts taken from each training dataset (random, seeded)."""
    tokens_per_training_set: int = 250_000
    """Token cap per training dataset (SVEN's long functions would otherwise dominate)."""
    eval_tokens: int = 100_000
    """Size of the held-out evaluation slice (whole documents, first in shuffled order)."""
    seed: int = 0


@dataclass(frozen=True)
class Corpus:
    """A tokenized corpus: document ``i`` is ``tokens[offsets[i]:offsets[i+1]]``."""

    tokens: torch.Tensor
    offsets: torch.Tensor
    doc_source: list[str]
    n_eval_docs: int
    meta: dict[str, Any]

    def doc(self, i: int) -> torch.Tensor:
        return self.tokens[int(self.offsets[i]) : int(self.offsets[i + 1])]

    @property
    def n_docs(self) -> int:
        return len(self.offsets) - 1

    def split_docs(self, split: str) -> range:
        return (
            range(0, self.n_eval_docs) if split == "eval" else range(self.n_eval_docs, self.n_docs)
        )

    def tokens_by_source(self) -> dict[str, int]:
        """Tokens per source file / training set after windowing and caps."""
        out: dict[str, int] = {}
        for i, src in enumerate(self.doc_source):
            out[src] = out.get(src, 0) + int(self.offsets[i + 1] - self.offsets[i])
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def split_tokens(self, split: str) -> int:
        r = self.split_docs(split)
        return int(self.offsets[r.stop] - self.offsets[r.start]) if len(r) else 0


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _training_set_docs(cfg: CorpusConfig) -> tuple[list[sources.RawDoc], list[dict[str, Any]]]:
    from classifiers.datasets import dataset_names, load_transcripts

    rng = random.Random(cfg.seed)
    docs: list[sources.RawDoc] = []
    info: list[dict[str, Any]] = []
    for name in dataset_names(role="train", labelled=True):
        rows = load_transcripts(name, cfg.datasets_root)
        picked = rng.sample(rows, min(cfg.per_training_set, len(rows)))
        docs.extend(sources.RawDoc(source=name, messages=tuple(t.messages)) for t in picked)
        info.append({"dataset": name, "transcripts": len(picked), "of": len(rows)})
    return docs, info


def _render(tokenizer: Any, doc: sources.RawDoc) -> list[int]:
    if doc.messages is not None:
        text = tokenizer.apply_chat_template(list(doc.messages), tokenize=False)
    else:
        text = doc.text or ""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def build_corpus(cfg: CorpusConfig, tokenizer: Any) -> Corpus:
    """Read every source, render, tokenize, window, shuffle and split."""
    if not sources.corpus_files():
        sources.register_builtin_readers()
    raw: list[sources.RawDoc] = []
    files: list[dict[str, Any]] = []
    for rel in sources.corpus_files():
        path = cfg.datasets_root / rel
        docs = list(sources.read_source(cfg.datasets_root, rel))
        raw.extend(docs)
        files.append({"path": rel, "sha256": sha256_file(path), "documents": len(docs)})
    extra, sets_info = _training_set_docs(cfg)
    raw.extend(extra)
    training_names = {i["dataset"] for i in sets_info}
    per_set: dict[str, int] = {}
    windows: list[tuple[str, list[int]]] = []
    for doc in raw:
        if doc.source in training_names and per_set.get(doc.source, 0) >= cfg.tokens_per_training_set:
            continue
        ids = _render(tokenizer, doc)
        per_set[doc.source] = per_set.get(doc.source, 0) + len(ids)
        for start in range(0, len(ids), cfg.max_len):
            piece = ids[start : start + cfg.max_len]
            if len(piece) >= cfg.min_len:
                windows.append((doc.source, piece))
    random.Random(cfg.seed).shuffle(windows)
    n_eval, acc = 0, 0
    while n_eval < len(windows) and acc < cfg.eval_tokens:
        acc += len(windows[n_eval][1])
        n_eval += 1
    lengths = torch.tensor([len(w[1]) for w in windows], dtype=torch.int64)
    offsets = torch.zeros(len(windows) + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(lengths, 0)
    tokens = torch.tensor([t for _, ids in windows for t in ids], dtype=torch.int32)
    meta = {
        "schema_version": 1,
        "files": files,
        "training_sets": sets_info,
        "config": {
            "max_len": cfg.max_len,
            "min_len": cfg.min_len,
            "per_training_set": cfg.per_training_set,
                   "tokens_per_training_set": cfg.tokens_per_training_set,
            "eval_tokens": cfg.eval_tokens,
            "seed": cfg.seed,
        },
        "n_docs": len(windows),
        "n_eval_docs": n_eval,
        "total_tokens": int(offsets[-1]),
        "eval_tokens": int(offsets[n_eval]),
    }
    log.info(
        "corpus_built",
        docs=len(windows),
        tokens=meta["total_tokens"],
        eval_tokens=meta["eval_tokens"],
    )
    return Corpus(
        tokens=tokens,
        offsets=offsets,
        doc_source=[w[0] for w in windows],
        n_eval_docs=n_eval,
        meta=meta,
    )


def save_corpus(corpus: Corpus, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(
        {"tokens": corpus.tokens, "offsets": corpus.offsets}, str(out_dir / "corpus.safetensors")
    )
    meta = dict(corpus.meta, doc_source=corpus.doc_source)
    (out_dir / "corpus.json").write_text(json.dumps(meta), encoding="utf-8")


def load_corpus(out_dir: Path) -> Corpus:
    t = load_file(str(out_dir / "corpus.safetensors"))
    meta = json.loads((out_dir / "corpus.json").read_text(encoding="utf-8"))
    doc_source = meta.pop("doc_source")
    return Corpus(
        tokens=t["tokens"],
        offsets=t["offsets"],
        doc_source=doc_source,
        n_eval_docs=int(meta["n_eval_docs"]),
        meta=meta,
    )


def ensure_corpus(cfg: CorpusConfig, tokenizer: Any, out_dir: Path) -> Corpus:
    """Load the pre-tokenized corpus from ``out_dir``, building it first if absent."""
    if (out_dir / "corpus.safetensors").is_file() and (out_dir / "corpus.json").is_file():
        return load_corpus(out_dir)
    corpus = build_corpus(cfg, tokenizer)
    save_corpus(corpus, out_dir)
    return corpus
