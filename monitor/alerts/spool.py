"""The on-disk spool: alerts that could not be sent to Redis yet.

A spool is a directory of append-only JSONL *segments* (``seg-000000000001.jsonl``);
every append is flushed and ``fsync``'d before it returns (one fsync per batch). The
sender thread is the only writer, so records are in publish order. Replay reads the
closed segments oldest first; each segment is deleted (``unlink`` + directory fsync)
only after all its records were accepted by Redis. A crash between sending and deleting
re-sends that segment on the next start: delivery is at-least-once at this layer, and
the Redis writer makes the re-send a no-op per ``alert_id`` (see
:mod:`monitor.alerts.redis_stream`), so the stream still gets each alert once.

A torn last line (a crash in the middle of a write, before its fsync returned) is
skipped with a warning. An exclusive ``flock`` on ``.lock`` keeps two processes from
sharing one spool.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import structlog

from monitor.alerts.model import Alert
from monitor.alerts.safelog import safe_log

log = structlog.get_logger(__name__)

_PREFIX = "seg-"
_SUFFIX = ".jsonl"


class SpoolLockedError(RuntimeError):
    """Another process holds this spool directory."""


@dataclass(frozen=True)
class Segment:
    """A closed segment file and the alerts it holds, in order."""

    path: Path
    alerts: tuple[Alert, ...]


class Spool:
    """Append-only, fsync'd, segment-based alert spool (see module docstring)."""

    def __init__(
        self, directory: str | Path, segment_records: int = 10_000, fsync: bool = True
    ) -> None:
        self.directory = Path(directory)
        self.segment_records = segment_records
        self.fsync = fsync
        self._lock = threading.Lock()
        self._lock_file: IO[bytes] | None = None
        self._counts: dict[Path, int] = {}
        self._pending = 0
        self._current: IO[bytes] | None = None
        self._current_path: Path | None = None
        self._next_number = 1

    # -- lifecycle ------------------------------------------------------------------------
    def open(self) -> None:
        """Create the directory, take the lock, count what earlier runs left behind."""
        self.directory.mkdir(parents=True, exist_ok=True)
        lock_file = open(self.directory / ".lock", "ab")  # noqa: SIM115 (held until close)
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            lock_file.close()
            raise SpoolLockedError(f"spool {self.directory} is in use by another process") from exc
        self._lock_file = lock_file
        with self._lock:
            for path in self._segment_paths():
                self._counts[path] = sum(1 for _ in self._read(path))
                self._next_number = max(self._next_number, _number(path) + 1)
            self._pending = sum(self._counts.values())
        if self.pending:
            safe_log(
                log, "info", "spool_found", directory=str(self.directory), pending=self.pending
            )

    def close(self) -> None:
        """Close the current segment and release the lock (records stay on disk)."""
        with self._lock:
            self._close_current()
        if self._lock_file is not None:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    # -- writing ------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Records on disk not yet confirmed delivered."""
        return self._pending

    def append(self, alerts: Sequence[Alert]) -> None:
        """Append alerts in order; durable (fsync'd) when this returns."""
        if not alerts:
            return
        data = b"".join(
            json.dumps(a.to_json_dict(), separators=(",", ":")).encode("utf-8") + b"\n"
            for a in alerts
        )
        with self._lock:
            handle, path = self._writable()
            handle.write(data)
            handle.flush()
            if self.fsync:
                os.fsync(handle.fileno())
            self._counts[path] = self._counts.get(path, 0) + len(alerts)
            self._pending += len(alerts)
            if self._counts[path] >= self.segment_records:
                self._close_current()

    # -- replay --------------------------------------------------------------------------
    def closed_segments(self) -> Iterator[Segment]:
        """Close the current segment, then yield every segment oldest first.

        Records appended while iterating go to a new segment that is not yielded.
        Call :meth:`discard` on a segment once its alerts were delivered.
        """
        with self._lock:
            self._close_current()
            paths = self._segment_paths()
        for path in paths:
            yield Segment(path, tuple(self._read(path)))

    def discard(self, segment: Segment) -> None:
        """Delete a delivered segment (durably)."""
        with self._lock:
            segment.path.unlink(missing_ok=True)
            self._pending -= self._counts.pop(segment.path, 0)
            self._sync_dir()

    # -- internals -------------------------------------------------------------------------
    def _writable(self) -> tuple[IO[bytes], Path]:
        if self._current is None or self._current_path is None:
            path = self.directory / f"{_PREFIX}{self._next_number:012d}{_SUFFIX}"
            self._next_number += 1
            self._current = open(path, "ab")  # noqa: SIM115 (kept open across appends)
            self._current_path = path
            self._counts.setdefault(path, 0)
            self._sync_dir()
        return self._current, self._current_path

    def _close_current(self) -> None:
        if self._current is not None:
            self._current.close()
        self._current = None
        self._current_path = None

    def _segment_paths(self) -> list[Path]:
        return sorted(
            (p for p in self.directory.glob(f"{_PREFIX}*{_SUFFIX}") if p.is_file()), key=_number
        )

    def _read(self, path: Path) -> Iterator[Alert]:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return
        for n, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield Alert.from_json_dict(json.loads(line))
            except (ValueError, TypeError, KeyError):
                safe_log(log, "warning", "spool_bad_record_skipped", path=str(path), line=n)

    def _sync_dir(self) -> None:
        if not self.fsync:
            return
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _number(path: Path) -> int:
    return int(path.name[len(_PREFIX) : -len(_SUFFIX)])
