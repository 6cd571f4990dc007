"""On-disk store of per-token residuals: safetensors chunk files, resumable, no pickles.

Layout under the store root (e.g. ``var/cache/resid``)::

    <model_sha256[:16]>/L<l1>-<l2>...-c<max_content_tokens>/<set name>/
        chunk_<i:04d>_<fingerprint>.safetensors

The directory names fix the model and the layers/cap; the fingerprint is a hash of the
chunk's item keys, so a chunk is reused only for exactly the same chats. Each chunk holds
``L<layer>`` [n_tokens, d_model] float16 per layer, ``ids`` [n_tokens] int32 (content
token ids) and ``offsets`` [n_items + 1] int64; the metadata holds the item keys (JSON).
Files are written to a temporary name and renamed, so a killed job leaves no torn chunk.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from classifiers.features.extract import Residuals


def store_dir(root: Path, model_sha256: str, layers: Sequence[int], max_content_tokens: int) -> Path:
    """The directory for one (model, layers, cap) combination."""
    tag = "L" + "-".join(str(x) for x in sorted(layers)) + f"-c{max_content_tokens}"
    return Path(root) / model_sha256[:16] / tag


def chunk_name(index: int, keys: Sequence[str]) -> str:
    """``chunk_0003_<hash of keys>.safetensors``."""
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:12]
    return f"chunk_{index:04d}_{digest}.safetensors"


def write_chunk(path: Path, keys: Sequence[str], residuals: Sequence[Residuals], layers: Sequence[int]) -> None:
    """Concatenate the items' residuals and write them atomically."""
    if len(keys) != len(residuals):
        raise ValueError("one Residuals per key")
    lengths = [len(r.ids) for r in residuals]
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lengths)
    tensors: dict[str, np.ndarray] = {
        "ids": np.concatenate([r.ids for r in residuals]).astype(np.int32),
        "offsets": offsets,
    }
    for layer in layers:
        tensors[f"L{layer}"] = np.ascontiguousarray(
            np.concatenate([r.layers[layer] for r in residuals]).astype(np.float16)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"keys": json.dumps(list(keys))})
    os.replace(tmp, path)


@dataclass(frozen=True)
class Chunk:
    """One chunk file's index (tensors are read on demand)."""

    path: Path
    """The safetensors file."""
    keys: tuple[str, ...]
    """Item keys, in order."""
    offsets: np.ndarray
    """Token offsets [n_items + 1]."""


def read_chunk_index(path: Path) -> Chunk:
    """Keys and offsets of a chunk (no residuals loaded)."""
    with safe_open(str(path), framework="numpy") as fh:
        keys = tuple(json.loads(fh.metadata()["keys"]))
        offsets = fh.get_tensor("offsets")
    return Chunk(path, keys, offsets)


def iter_chunks(directory: Path) -> Iterator[Path]:
    """Every complete chunk file under ``directory`` (any set), sorted by path."""
    yield from sorted(Path(directory).glob("*/chunk_*.safetensors"))


def load_tensor(path: Path, name: str) -> np.ndarray:
    """One tensor of a chunk file."""
    with safe_open(str(path), framework="numpy") as fh:
        out: np.ndarray = fh.get_tensor(name)
    return out
