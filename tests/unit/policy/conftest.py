"""Fixtures for policy tests."""

from __future__ import annotations

import pytest

from monitor.policy import StaticPackInfo
from tests.unit.policy.toys import toy_pack


@pytest.fixture
def pack() -> StaticPackInfo:
    return toy_pack()
