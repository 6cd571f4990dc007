"""Feature bases a probe can read, computed from the residual cache.

Basis specs (strings, saved in probes.json and the report):

- ``sae:L`` -- SAE codes at layer L (the run-time basis when the pack's SAE hooks layer L);
- ``saeerr:L`` -- SAE codes plus the SAE error term ``x - decode(z)``;
- ``dense:L`` -- raw residuals at layer L; ``dense:L1+L2`` -- several layers concatenated.

:class:`TokenFeatures` keeps each (basis, item set) per-token matrix in memory so the same
features serve every attempt; per-token matrices give the run-time readings (per-token
logits), pooled ones the training rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from classifiers.features.bank import ResidualBank
from classifiers.features.pooling import pool
from classifiers.features.sae_basis import encode_tokens


@dataclass(frozen=True)
class Basis:
    """A parsed basis spec."""

    kind: str
    """``sae``, ``saeerr`` or ``dense``."""
    layers: tuple[int, ...]
    """Residual layer(s)."""

    @classmethod
    def parse(cls, spec: str) -> Basis:
        """``sae:15`` / ``saeerr:15`` / ``dense:9+15``."""
        kind, _, rest = spec.partition(":")
        if kind not in ("sae", "saeerr", "dense") or not rest:
            raise ValueError(f"bad basis {spec!r}; expected sae:L, saeerr:L or dense:L[+L2...]")
        layers = tuple(int(x) for x in rest.split("+"))
        if kind != "dense" and len(layers) != 1:
            raise ValueError(f"{spec!r}: SAE bases read one layer")
        return cls(kind, layers)

    @property
    def spec(self) -> str:
        """The string form."""
        return f"{self.kind}:" + "+".join(map(str, self.layers))


class TokenFeatures:
    """Per-token feature matrices per (basis, key tuple), computed once."""

    def __init__(self, bank: ResidualBank, sae: Any | None = None, sae_layer: int | None = None):
        self.bank = bank
        self.sae = sae
        self.sae_layer = sae_layer
        self._memo: dict[tuple[str, tuple[str, ...]], tuple[Any, np.ndarray]] = {}

    def tokens(self, basis: Basis, keys: Sequence[str]) -> tuple[Any, np.ndarray]:
        """(T [n_tokens, d], offsets [n_items + 1])."""
        memo_key = (basis.spec, tuple(keys))
        if memo_key not in self._memo:
            self._memo[memo_key] = self._compute(basis, keys)
        return self._memo[memo_key]

    def _compute(self, basis: Basis, keys: Sequence[str]) -> tuple[Any, np.ndarray]:
        if basis.kind == "dense":
            mats = [self.bank.tokens(keys, layer) for layer in basis.layers]
            T = mats[0].X if len(mats) == 1 else np.hstack([m.X for m in mats])
            return T, mats[0].offsets
        if self.sae is None or basis.layers[0] != self.sae_layer:
            raise ValueError(f"basis {basis.spec} needs an SAE at layer {basis.layers[0]}")
        tm = self.bank.tokens(keys, basis.layers[0])
        enc = encode_tokens(self.sae, tm.X, with_error=basis.kind == "saeerr")
        if basis.kind == "sae":
            return enc.Z, tm.offsets
        return sp.hstack([enc.Z, sp.csr_matrix(enc.E)], format="csr"), tm.offsets

    def pooled(self, basis: Basis, keys: Sequence[str], how: str) -> np.ndarray:
        """Pooled rows [n_items, d]."""
        T, offsets = self.tokens(basis, keys)
        return pool(T, offsets, how)

    def forget(self) -> None:
        """Drop memoised matrices."""
        self._memo.clear()
