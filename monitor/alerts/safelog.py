"""Logging that can never raise: the alert sender thread must survive a broken log
stream (closed stderr, full pipe), or alerts would stop flowing."""

from __future__ import annotations

import contextlib
from typing import Any


def safe_log(logger: Any, level: str, event: str, **kw: Any) -> None:
    """``logger.<level>(event, **kw)``, swallowing any error raised while logging."""
    with contextlib.suppress(Exception):
        getattr(logger, level)(event, **kw)
