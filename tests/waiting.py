"""Polling helper shared by the integration tests."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(pred: Callable[[], object], timeout: float = 10.0, interval: float = 0.05,
               ignore: tuple[type[BaseException], ...] = ()) -> bool:
    """True as soon as ``pred()`` is truthy, False after ``timeout`` seconds; exceptions
    of the types in ``ignore`` count as "not yet" (e.g. a server that is still starting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return True
        except ignore:
            pass
        time.sleep(interval)
    return False
