"""SAE codes (and the SAE error term) of cached residuals, in blocks, as sparse matrices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class SaeTokens:
    """Per-token SAE outputs for a token matrix."""

    Z: sp.csr_matrix
    """SAE codes [n_tokens, d_sae] (sparse: TopK / JumpReLU codes are mostly zero)."""
    E: np.ndarray
    """Error term ``x - decode(z)`` [n_tokens, d_in] float32."""


def encode_tokens(sae: Any, X: np.ndarray, block: int = 4096, with_error: bool = True) -> SaeTokens:
    """``sae.encode`` of raw residual rows (the SAE applies its own input processing)."""
    import torch

    zs: list[sp.csr_matrix] = []
    errs: list[np.ndarray] = []
    with torch.inference_mode():
        for lo in range(0, X.shape[0], block):
            x = torch.as_tensor(np.asarray(X[lo : lo + block], dtype=np.float32))
            z = sae.encode(x)
            zs.append(sp.csr_matrix(z.numpy()))
            if with_error:
                errs.append((x - sae.decode(z)).numpy().astype(np.float32))
    d_sae = int(sae.cfg.d_sae)
    Z = sp.vstack(zs, format="csr") if zs else sp.csr_matrix((0, d_sae), dtype=np.float32)
    E = np.concatenate(errs) if errs else np.zeros((X.shape[0], 0), np.float32)
    return SaeTokens(Z=Z, E=E)
