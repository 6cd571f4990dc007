"""Reading the alert stream: consumer groups (XREADGROUP / XACK / XAUTOCLAIM) and a
plain tail (XREAD).

A consumer group hands each entry to one consumer of the group; the consumer
acknowledges it (XACK) after handling it. Entries a consumer read but never
acknowledged (it died) stay pending; another consumer takes them over with
XAUTOCLAIM once they have been idle for ``min_idle_ms``. Delivery is therefore
at-least-once: de-duplicate on ``alert_id`` if handling twice matters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from monitor.alerts.model import Alert, format_ts


@dataclass(frozen=True)
class Delivery:
    """One stream entry handed to a reader."""

    entry_id: str
    """The stream entry id (``1700000000000-0``); what XACK takes."""
    fields: Mapping[str, str]
    """The entry's fields, decoded."""
    reclaimed: bool = False
    """Taken over from another consumer with XAUTOCLAIM."""

    def alert(self) -> Alert:
        """Parse the fields as an :class:`Alert`."""
        return Alert.from_fields(self.fields)

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the alert (``ts`` as ISO 8601) plus ``stream_id``."""
        try:
            out = self.alert().to_json_dict()
            out["ts"] = format_ts(out["ts"])
        except (ValueError, TypeError, KeyError):
            out = dict(self.fields)
        out["stream_id"] = self.entry_id
        if self.reclaimed:
            out["reclaimed"] = True
        return out


class GroupSubscriber:
    """One consumer of a consumer group on the alert stream."""

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        group: str,
        consumer: str,
        min_idle_ms: int = 60_000,
        count: int = 100,
    ) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.min_idle_ms = min_idle_ms
        self.count = count

    def ensure_group(self, start_id: str = "$") -> bool:
        """Create the group (and the stream) if needed; True if it was created.

        ``start_id``: ``$`` = only entries added from now on, ``0`` = the whole stream.
        """
        try:
            self.client.xgroup_create(self.stream, self.group, id=start_id, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" in str(exc):
                return False
            raise
        return True

    def read_new(self, block_ms: int | None = None) -> list[Delivery]:
        """Entries never delivered to any consumer of the group (``>``)."""
        return self._read(">", block_ms)

    def read_own_pending(self) -> list[Delivery]:
        """Entries delivered to *this* consumer name earlier but not acknowledged (for a
        consumer that restarts under the same name)."""
        return self._read("0", None)

    def claim_stale(self) -> list[Delivery]:
        """Take over entries pending for at least ``min_idle_ms`` on any consumer."""
        out: list[Delivery] = []
        cursor: Any = "0-0"
        while True:
            reply = self.client.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=self.min_idle_ms,
                start_id=cursor,
                count=self.count,
            )
            cursor, entries = reply[0], reply[1]
            out.extend(_deliveries(entries, reclaimed=True))
            if _text(cursor) == "0-0":
                return out

    def ack(self, *entry_ids: str) -> int:
        """Acknowledge handled entries; returns how many were pending."""
        if not entry_ids:
            return 0
        return int(self.client.xack(self.stream, self.group, *entry_ids))

    def _read(self, start: str, block_ms: int | None) -> list[Delivery]:
        reply = self.client.xreadgroup(
            self.group, self.consumer, {self.stream: start}, count=self.count, block=block_ms
        )
        out: list[Delivery] = []
        for _stream, entries in _stream_items(reply):
            out.extend(_deliveries(entries))
        return out


class StreamTail:
    """Plain XREAD of the stream (no group, no acknowledgements)."""

    def __init__(
        self, client: redis.Redis, stream: str, from_start: bool = False, count: int = 100
    ) -> None:
        self.client = client
        self.stream = stream
        self.count = count
        self._last: str | None = "0-0" if from_start else None

    def poll(self, block_ms: int | None = None) -> list[Delivery]:
        """The next entries after the last one seen (waits up to ``block_ms``).

        Without ``from_start`` the position is pinned on the first call to the stream's
        last entry, so nothing added between two polls is skipped.
        """
        if self._last is None:
            self._last = self._current_last_id()
        reply = self.client.xread({self.stream: self._last}, count=self.count, block=block_ms)
        out: list[Delivery] = []
        for _stream, entries in _stream_items(reply):
            out.extend(_deliveries(entries))
        if out:
            self._last = out[-1].entry_id
        return out

    def _current_last_id(self) -> str:
        try:
            info = self.client.xinfo_stream(self.stream)
        except redis.ResponseError:  # no such stream yet
            return "0-0"
        return _text(info["last-generated-id"])


def _stream_items(reply: Any) -> list[tuple[Any, Any]]:
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3
        return list(reply.items())
    return [(item[0], item[1]) for item in reply]


def _deliveries(entries: Any, reclaimed: bool = False) -> list[Delivery]:
    out: list[Delivery] = []
    for entry_id, fields in entries or []:
        if fields is None:  # deleted entry still pending
            continue
        decoded = {_text(k): _text(v) for k, v in fields.items()}
        out.append(Delivery(_text(entry_id), decoded, reclaimed))
    return out


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
