"""Pool per-token features over each item's tokens: mean, max or last.

Works on dense arrays and on scipy sparse CSR matrices (SAE codes). Mean pooling has the
property the run time relies on: the mean over tokens of per-token logits ``x_t @ w + b``
equals the logit of the mean-pooled features, so a mean-pooled probe's response score is
the run-time per-token logits averaged over the response.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

Pooling = Literal["mean", "max", "last"]
POOLINGS: tuple[str, ...] = ("mean", "max", "last")


def segment_matrix(offsets: np.ndarray) -> sp.csr_matrix:
    """[n_items, n_tokens] matrix with 1/len on each item's tokens (mean pooling as a matmul)."""
    lengths = np.diff(offsets)
    if np.any(lengths <= 0):
        raise ValueError("every item needs at least one token")
    n_tok = int(offsets[-1])
    rows = np.repeat(np.arange(lengths.size), lengths)
    vals = np.repeat(1.0 / lengths, lengths)
    return sp.csr_matrix((vals, (rows, np.arange(n_tok))), shape=(lengths.size, n_tok))


def pool(T: Any, offsets: np.ndarray, how: str) -> np.ndarray:
    """Pooled features [n_items, d] (dense float32) of per-token rows ``T`` [n_tokens, d]."""
    if how == "mean":
        out = segment_matrix(offsets) @ T
        return np.asarray(out.todense() if sp.issparse(out) else out, dtype=np.float32)
    if how == "last":
        rows = T[offsets[1:] - 1]
        return np.asarray(rows.todense() if sp.issparse(rows) else rows, dtype=np.float32)
    if how == "max":
        if sp.issparse(T):
            T = sp.csr_matrix(T)
            out = np.zeros((offsets.size - 1, T.shape[1]), dtype=np.float32)
            for i in range(offsets.size - 1):
                block = T[offsets[i] : offsets[i + 1]]
                out[i] = np.asarray(block.max(axis=0).todense()).ravel()
            return out
        return np.maximum.reduceat(np.asarray(T, dtype=np.float32), offsets[:-1], axis=0)
    raise ValueError(f"unknown pooling {how!r}; expected one of {POOLINGS}")
