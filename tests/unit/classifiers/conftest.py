"""Fixtures for the classifiers unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifiers.datasets import default_datasets_root


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    """The shared datasets folder; tests that need it skip when it is absent."""
    root = default_datasets_root()
    if not (root / "README.md").is_file():
        pytest.skip(f"shared datasets folder not found at {root} (expected ../shared/datasets)")
    return root


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)
