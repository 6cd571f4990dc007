"""A preallocated key/value cache with per-row lengths (rows = sequences in a batch).

Keys and values are written in place (no ``torch.cat`` per step); capacity grows in
chunks. Each row has its own length, so rows of different lengths can share a batch:
the attention mask hides positions past a row's length.
"""

from __future__ import annotations

import torch

GROW = 256


class KVCache:
    def __init__(self, n_layers: int, batch: int, n_kv_heads: int, d_head: int,
                 device: torch.device | str, dtype: torch.dtype, capacity: int = GROW):
        self.n_layers, self.batch, self.n_kv_heads, self.d_head = n_layers, batch, n_kv_heads, d_head
        self.device, self.dtype = torch.device(device), dtype
        self.capacity = capacity
        shape = (batch, n_kv_heads, capacity, d_head)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layers)]
        self.lengths = torch.zeros(batch, dtype=torch.long)
        """Tokens cached per row (on CPU; small)."""

    def ensure(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        new_cap = max(needed, self.capacity + GROW)
        for store in (self.k, self.v):
            for i, t in enumerate(store):
                bigger = torch.zeros((self.batch, self.n_kv_heads, new_cap, self.d_head), device=self.device, dtype=self.dtype)
                bigger[:, :, : self.capacity] = t
                store[i] = bigger
        self.capacity = new_cap

    def reset_row(self, row: int) -> None:
        self.lengths[row] = 0

    def move_row(self, src: int, dst: int) -> None:
        """Copy row ``src`` into ``dst`` (keeps active rows a contiguous prefix when a
        sequence leaves a batch)."""
        if src == dst:
            return
        n = int(self.lengths[src])
        for store in (self.k, self.v):
            for t in store:
                t[dst, :, :n] = t[src, :, :n]
        self.lengths[dst] = n
        self.lengths[src] = 0

    def swap_rows(self, a: int, b: int) -> None:
        """Exchange rows ``a`` and ``b`` (keys, values and lengths)."""
        if a == b:
            return
        n = int(max(self.lengths[a], self.lengths[b]))
        for store in (self.k, self.v):
            for t in store:
                tmp = t[a, :, :n].clone()
                t[a, :, :n] = t[b, :, :n]
                t[b, :, :n] = tmp
        self.lengths[a], self.lengths[b] = self.lengths[b].clone(), self.lengths[a].clone()
