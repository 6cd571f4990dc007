"""Redis memory per alert: the stream entry and the write-once (de-duplication) key.

    .venv/bin/python ops/bench/alert_memory.py [--alerts 20000]

Starts a private ``redis-server`` and writes ``--alerts`` alerts with the daemon's own
writer (:class:`monitor.alerts.redis_stream.RedisStreamWriter`, batches of 500, default
settings: stream MAXLEN 100,000, one ``SET NX EX`` key per ``alert_id`` kept a day). The
alerts look like the daemon's: uuid4 ids, a 64-hex policy version, a rule, probe, score
and threshold. It then reads Redis' ``used_memory`` and ``MEMORY USAGE`` of the stream and
of 200 sampled de-duplication keys.

The stream is capped by MAXLEN, so its memory stops growing. The de-duplication keys are
not capped: they grow with the alert *rate* times ``dedup_ttl_s``. That is the number an
operator sizes Redis with (``saeguard serve --dedup-ttl``).

The LAST line of stdout is one JSON object: ``alerts``, ``used_memory_delta_bytes``,
``stream_bytes_per_alert``, ``other_bytes_per_alert`` (the used_memory growth not in the
stream: the de-duplication keys with their expiry entries), ``dedup_key_memory_usage_bytes``
(MEMORY USAGE of one key, without the expiry dict), ``dedup_mb_per_day_at_1_alert_per_s``,
``machine``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402  (puts the repo root on sys.path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--alerts", type=int, default=20000)
    args = ap.parse_args()

    import redis

    from monitor.alerts.model import Alert, new_alert_id
    from monitor.alerts.redis_stream import RedisStreamWriter

    with harness.private_redis() as server:
        client = redis.Redis.from_url(server.url)
        base = int(client.info("memory")["used_memory"])
        writer = RedisStreamWriter(client)
        for lo in range(0, args.alerts, 500):
            batch = [Alert(alert_id=new_alert_id(), kind="rule", ts=1.8e9 + i, request_id=f"chatcmpl-{i:032x}",
                           token_index=i % 200, rule_id="deception-watch", probe="deception", score=0.93,
                           threshold=0.89, policy_version="f" * 64)
                     for i in range(lo, min(lo + 500, args.alerts))]
            writer.send(batch)
            if (lo // 500) % 10 == 0:
                harness.progress("written", alerts=lo + len(batch))
        total = int(client.info("memory")["used_memory"]) - base
        stream = int(client.memory_usage(writer.stream) or 0)
        keys = []
        for key in client.scan_iter(match=writer.dedup_prefix + "*", count=1000):
            keys.append(key)
            if len(keys) >= 200:
                break
        per_key = sum(int(client.memory_usage(k) or 0) for k in keys) / max(len(keys), 1)
        other = (total - stream) / args.alerts
        harness.result_line({
            "alerts": args.alerts, "used_memory_delta_bytes": total,
            "stream_bytes_per_alert": round(stream / args.alerts, 1),
            "other_bytes_per_alert": round(other, 1),
            "dedup_key_memory_usage_bytes": round(per_key, 1),
            "dedup_mb_per_day_at_1_alert_per_s": round(other * 86_400 / 1e6, 1),
            "stream_maxlen": writer.maxlen, "dedup_ttl_s": writer.dedup_ttl_s,
            "machine": harness.machine(),
        })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
