"""``saeguard alerts``: read the alert stream.

``alerts tail`` prints one JSON object per alert (the alert's fields, ``ts`` in ISO
8601, plus ``stream_id``). With ``--group G --consumer C`` it reads as a member of a
consumer group: it first takes over entries another consumer left pending for longer
than ``--claim-min-idle-ms`` (XAUTOCLAIM), then re-reads its own unacknowledged
entries, then new ones (XREADGROUP), acknowledging each entry (XACK) after printing it.
Without ``--group`` it is a plain XREAD from now on (or ``--from-start``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from monitor.cli import CliError

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("alerts", help="read the alert stream")
    sub = parser.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    tail = sub.add_parser("tail", help="print alerts as JSON lines")
    tail.add_argument(
        "--redis", default=DEFAULT_URL, metavar="URL",
        help=f"Redis URL (default {DEFAULT_URL}; redis+cluster://HOST:PORT for a Redis Cluster)",
    )
    tail.add_argument("--stream", default="saeguard:alerts", metavar="S", help="stream name")
    tail.add_argument("--group", metavar="G", help="consumer group (created if missing)")
    tail.add_argument("--consumer", metavar="C", help="consumer name within the group")
    tail.add_argument(
        "--from-start",
        action="store_true",
        help="read the whole stream (plain mode), or create the group at the start",
    )
    tail.add_argument(
        "--claim-min-idle-ms",
        type=int,
        default=60_000,
        metavar="MS",
        help="take over entries pending on another consumer for this long (default 60000)",
    )
    tail.add_argument(
        "--claim-every-s",
        type=float,
        default=5.0,
        metavar="S",
        help="how often to look for stale pending entries (default 5)",
    )
    tail.add_argument("--block-ms", type=int, default=1000, metavar="MS", help="XREAD block time")
    tail.add_argument(
        "--limit", type=int, default=0, metavar="N", help="exit after N alerts (0: never)"
    )
    tail.add_argument(
        "--idle-exit-s",
        type=float,
        default=0.0,
        metavar="S",
        help="exit when nothing arrived for S seconds (0: never)",
    )
    tail.set_defaults(func=cmd_tail)


def cmd_tail(args: argparse.Namespace) -> int:
    import redis

    from monitor.alerts.redis_stream import make_redis_client

    if (args.group is None) != (args.consumer is None):
        raise CliError("--group and --consumer go together")
    client = make_redis_client(args.redis, timeout_s=max(5.0, args.block_ms / 1000 + 5.0))
    try:
        client.ping()
    except redis.RedisError as exc:
        raise CliError(f"cannot reach Redis at {args.redis}: {exc}") from exc
    printer = _Printer(args.limit, args.idle_exit_s)
    try:
        if args.group:
            _tail_group(client, args, printer)
        else:
            _tail_plain(client, args, printer)
    except redis.RedisError as exc:
        raise CliError(f"redis error: {exc}") from exc
    finally:
        client.close()
    return 0


class _Printer:
    def __init__(self, limit: int, idle_exit_s: float) -> None:
        self.limit = limit
        self.idle_exit_s = idle_exit_s
        self.count = 0
        self.last = time.monotonic()

    def emit(self, delivery: Any) -> None:
        sys.stdout.write(json.dumps(delivery.to_json_dict(), ensure_ascii=False) + "\n")
        sys.stdout.flush()
        self.count += 1
        self.last = time.monotonic()

    def done(self) -> bool:
        if self.limit and self.count >= self.limit:
            return True
        return bool(self.idle_exit_s) and time.monotonic() - self.last >= self.idle_exit_s


def _tail_plain(client: Any, args: argparse.Namespace, printer: _Printer) -> None:
    from monitor.alerts.subscriber import StreamTail

    tail = StreamTail(client, args.stream, from_start=args.from_start)
    while not printer.done():
        for delivery in tail.poll(block_ms=args.block_ms):
            printer.emit(delivery)
            if printer.done():
                return


def _tail_group(client: Any, args: argparse.Namespace, printer: _Printer) -> None:
    from monitor.alerts.subscriber import GroupSubscriber

    sub = GroupSubscriber(
        client, args.stream, args.group, args.consumer, min_idle_ms=args.claim_min_idle_ms
    )
    sub.ensure_group("0" if args.from_start else "$")

    def handle(batch: list[Any]) -> bool:
        for delivery in batch:
            printer.emit(delivery)
            sub.ack(delivery.entry_id)
            if printer.done():
                return True
        return False

    if handle(sub.claim_stale()):
        return
    while True:  # entries this consumer name read before a restart, never acknowledged
        pending = sub.read_own_pending()
        if not pending:
            break
        if handle(pending):
            return
    next_claim = time.monotonic() + args.claim_every_s
    while not printer.done():
        if handle(sub.read_new(block_ms=args.block_ms)):
            return
        if time.monotonic() >= next_claim:
            next_claim = time.monotonic() + args.claim_every_s
            if handle(sub.claim_stale()):
                return
