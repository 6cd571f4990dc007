#!/usr/bin/env python3
"""Example saeguard alert subscriber (plain redis-py; no saeguard import needed).

Reads the alert stream as one consumer of a consumer group, so several copies of this
script share the work and each alert is handled by one of them:

1. on start, take over alerts that a dead consumer read but never acknowledged
   (XAUTOCLAIM, after --claim-min-idle-ms);
2. re-read this consumer's own unacknowledged alerts (after a restart under the same
   --consumer name);
3. read new alerts (XREADGROUP ... >), handle each, then acknowledge it (XACK).

Run one copy per subscriber instance with the same --group and its own --consumer; the
alerts of every saeguard replica are in the one stream.

Delivery is at-least-once: an alert handled just before a crash (before XACK) is
delivered again. De-duplicate on ``alert_id`` when handling twice matters (this
example remembers the last 10,000 ids).

Usage:
    python ops/subscriber_example.py --redis redis://127.0.0.1:6379/0 \\
        --group oncall --consumer "$(hostname)-1" --min-severity high
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import OrderedDict

import redis

SEVERITIES = ["info", "low", "medium", "high", "critical"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/0",
        help="redis://HOST:PORT/DB, or redis+cluster://HOST:PORT for a Redis Cluster",
    )
    p.add_argument("--stream", default="saeguard:alerts")
    p.add_argument("--group", default="example-subscribers")
    p.add_argument("--consumer", default="example-1")
    p.add_argument(
        "--min-severity",
        choices=SEVERITIES,
        default="info",
        help="print only alerts at least this severe (all are acknowledged)",
    )
    p.add_argument("--claim-min-idle-ms", type=int, default=60_000)
    p.add_argument(
        "--limit", type=int, default=0, help="exit after handling N alerts (0: run forever)"
    )
    return p.parse_args(argv)


def connect(url: str) -> redis.Redis:
    """One Redis (``redis://``), or a Redis Cluster through any node (``redis+cluster://``,
    as ``saeguard serve --redis`` takes it)."""
    if url.startswith(("redis+cluster://", "rediss+cluster://")):
        plain = url.replace("+cluster", "", 1)
        return redis.RedisCluster.from_url(plain, decode_responses=True)  # type: ignore[return-value]
    return redis.Redis.from_url(url, decode_responses=True)


class Subscriber:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.r = connect(args.redis)
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.handled = 0

    def ensure_group(self) -> None:
        try:
            self.r.xgroup_create(self.args.stream, self.args.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def handle(self, entry_id: str, fields: dict[str, str]) -> None:
        alert_id = fields.get("alert_id", entry_id)
        if alert_id not in self.seen:
            self.seen[alert_id] = None
            if len(self.seen) > 10_000:
                self.seen.popitem(last=False)
            severity = fields.get("severity") or "info"
            rank = SEVERITIES.index(severity) if severity in SEVERITIES else 0
            if rank >= SEVERITIES.index(self.args.min_severity):
                # A real subscriber would page someone, open a ticket, feed a SIEM...
                print(json.dumps({"stream_id": entry_id, **fields}), flush=True)
        self.r.xack(self.args.stream, self.args.group, entry_id)
        self.handled += 1

    def done(self) -> bool:
        return bool(self.args.limit) and self.handled >= self.args.limit

    def claim_stale(self) -> None:
        cursor = "0-0"
        while not self.done():
            cursor, entries, *_ = self.r.xautoclaim(
                self.args.stream,
                self.args.group,
                self.args.consumer,
                min_idle_time=self.args.claim_min_idle_ms,
                start_id=cursor,
                count=100,
            )
            for entry_id, fields in entries:
                if fields is not None and not self.done():
                    self.handle(entry_id, fields)
            if cursor == "0-0":
                return

    def read(self, start: str, block_ms: int | None) -> int:
        reply = self.r.xreadgroup(
            self.args.group,
            self.args.consumer,
            {self.args.stream: start},
            count=100,
            block=block_ms,
        )
        n = 0
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                if not self.done():
                    self.handle(entry_id, fields)
                    n += 1
        return n

    def run(self) -> int:
        self.ensure_group()
        self.claim_stale()
        while not self.done() and self.read("0", None):  # own pending, after a restart
            pass
        last_claim = time.monotonic()
        while not self.done():
            self.read(">", 1000)
            if time.monotonic() - last_claim > 5:
                self.claim_stale()
                last_claim = time.monotonic()
        return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return Subscriber(parse_args(argv)).run()
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
