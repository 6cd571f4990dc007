"""Read cached residuals back: item key -> content-token residuals at a layer.

:class:`ResidualBank` indexes every chunk under a store directory (all sets) and returns,
for a list of item keys, the concatenated per-token residuals plus offsets: item ``i``'s
tokens are rows ``offsets[i]:offsets[i + 1]``. Items missing from the cache are reported,
never silently dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifiers.features.store import iter_chunks, load_tensor, read_chunk_index


@dataclass(frozen=True)
class TokenMatrix:
    """Per-token rows of several items."""

    X: np.ndarray
    """[n_tokens, d] (float32 for residuals)."""
    offsets: np.ndarray
    """[n_items + 1] int64: item i is rows offsets[i]:offsets[i+1]."""

    @property
    def n_items(self) -> int:
        """Number of items."""
        return int(self.offsets.size - 1)


class ResidualBank:
    """Index over the chunk files of one store directory (see :mod:`.store`)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._where: dict[str, tuple[Path, int, int]] = {}
        for path in iter_chunks(self.directory):
            chunk = read_chunk_index(path)
            for i, key in enumerate(chunk.keys):
                self._where.setdefault(key, (path, int(chunk.offsets[i]), int(chunk.offsets[i + 1])))
        self._cache: dict[tuple[Path, str], np.ndarray] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def __len__(self) -> int:
        return len(self._where)

    def missing(self, keys: Sequence[str]) -> list[str]:
        """Keys with no cached residuals."""
        return [k for k in keys if k not in self._where]

    def _tensor(self, path: Path, name: str) -> np.ndarray:
        key = (path, name)
        if key not in self._cache:
            self._cache[key] = load_tensor(path, name)
        return self._cache[key]

    def drop_cache(self) -> None:
        """Forget loaded chunk tensors (memory)."""
        self._cache.clear()

    def tokens(self, keys: Sequence[str], layer: int, dtype: type = np.float32) -> TokenMatrix:
        """Residuals at ``layer`` of every item, concatenated."""
        return self._gather(keys, f"L{layer}", dtype)

    def ids(self, keys: Sequence[str]) -> TokenMatrix:
        """Content token ids of every item (X is [n_tokens] int32)."""
        return self._gather(keys, "ids", np.int32)

    def _gather(self, keys: Sequence[str], name: str, dtype: type) -> TokenMatrix:
        missing = self.missing(keys)
        if missing:
            raise KeyError(f"{len(missing)} items are not in the residual cache {self.directory} "
                           f"(first: {missing[0]}); run `saeguard probe-cache` first")
        parts = []
        offsets = np.zeros(len(keys) + 1, dtype=np.int64)
        for i, key in enumerate(keys):
            path, lo, hi = self._where[key]
            parts.append(self._tensor(path, name)[lo:hi])
            offsets[i + 1] = offsets[i] + (hi - lo)
        X: np.ndarray = np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros((0,), dtype)
        return TokenMatrix(X, offsets)
