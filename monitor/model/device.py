"""Device choice: CUDA when present, else CPU."""

from __future__ import annotations

import torch


def pick_device(requested: str | None = None) -> torch.device:
    """``requested`` ("cpu", "cuda", "cuda:1", or None/"auto" for CUDA-if-present)."""
    if requested in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(requested)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from monitor.model.errors import ModelSpecError

        raise ModelSpecError(f"device {requested!r} requested but CUDA is not available; use --device cpu")
    return dev
