"""Alert latency: a token is scored inside the forward pass -> its alert is visible to a
subscriber reading the Redis stream. p50 / p99 over >= 1,000 alerts.

    .venv/bin/python ops/bench/alert_latency.py [--alerts 1000] [--max-tokens 32] \\
        [--concurrency 4] [--threads 2] [--appendfsync always]

What is timed: an alert's ``ts`` is the wall clock (``time.time()``) taken by the policy
engine inside the forward hook, at the step that scores the token's position, just
before the alert is handed to the alert sink (monitor/policy/engine.py ``_alert``). A
subscriber process of its own does blocking ``XREAD`` on the stream (as
``saeguard alerts tail`` and ``ops/subscriber_example.py`` do) and takes ``time.time()``
when each entry arrives. Daemon and subscriber run on the same machine, so the two
clocks are one clock: ``latency = arrival - ts``.

The split uses the stream entry id, which Redis stamps with its own clock (ms) at
``XADD``: ``to_redis`` = entry id time - ts (sink queue, sender thread, round trip,
Lua script), ``to_subscriber`` = arrival - entry id time (Redis -> XREAD reply). Both
have 1 ms resolution; the total does not.
Redis runs with AOF ``appendfsync always``, as ``ops/redis.conf`` does: it fsyncs before
replying to anyone, so the fsync is part of ``to_subscriber`` (``--appendfsync everysec``
shows its share).

The policy has one rule per response position (``min_consecutive: k`` for k = 1..
max_tokens, threshold 0), so every generated token raises exactly one alert: alerts
arrive spread over the generation, as real ones do, not in one burst per request.

Prints progress on stderr and ONE JSON line (the last line of stdout).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

from monitor.alerts.model import parse_ts  # noqa: E402  (harness puts the repo on sys.path)

STREAM = "bench:alert-latency"

PROMPTS = [
    "Count from one to one hundred, in words, separated by commas.",
    "Write a long poem about the sea, the wind and a small boat.",
    "List as many European capital cities as you can.",
    "Explain step by step how a bicycle gear system works.",
]


def latency_policy(max_tokens: int) -> str:
    """One alert per generated token: rule k fires at the k-th response token."""
    rules = "".join(
        f"  - id: tok-{k}\n"
        f"    when: {{probe: deception, threshold: 0.0, scope: response, min_consecutive: {k}}}\n"
        f"    then: [{{alert: {{severity: info}}}}]\n"
        for k in range(1, max_tokens + 1)
    )
    return f"name: alert-latency\nmode: enforce\non_monitor_error: fail_open\nrules:\n{rules}"


def subscribe(url: str, stream: str, out_path: str, ready: Any, stop: Any, count: Any) -> None:
    """The subscriber, in a process of its own (as a real one is: no GIL shared with the
    benchmark's HTTP clients). Blocking XREAD; for each entry (alert_id, ts, entry id
    time, arrival time) written as JSON to ``out_path`` when ``stop`` is set."""
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=10)
    seen: dict[str, tuple[float, float, float]] = {}
    last = "0-0"  # a private Redis: the stream is new, read it all
    ready.set()
    while not stop.is_set():
        reply = client.xread({stream: last}, count=1000, block=200)
        now = time.time()  # first thing after the reply: the arrival time
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                last = entry_id
                entry_s = int(entry_id.split("-", 1)[0]) / 1000.0
                seen[fields["alert_id"]] = (parse_ts(fields["ts"]), entry_s, now)
        count.value = len(seen)
    Path(out_path).write_text(json.dumps(seen))


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100])."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))]


def summary(prefix: str, values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {f"{prefix}p50_ms": round(pct(ms, 50), 2), f"{prefix}p90_ms": round(pct(ms, 90), 2),
            f"{prefix}p99_ms": round(pct(ms, 99), 2), f"{prefix}max_ms": round(max(ms), 2),
            f"{prefix}mean_ms": round(statistics.fmean(ms), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alerts", type=int, default=1000, help="alerts to time, at least (default 1000)")
    ap.add_argument("--max-tokens", type=int, default=32, help="tokens (= alerts) per request (default 32)")
    ap.add_argument("--concurrency", type=int, default=4, help="concurrent streaming clients (default 4)")
    ap.add_argument("--threads", type=int, default=2, help="daemon torch threads (default 2)")
    ap.add_argument("--appendfsync", choices=["always", "everysec", "no"], default="always",
                    help="Redis AOF fsync policy (default always, as ops/redis.conf)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the daemon's log and spool here")
    args = ap.parse_args()

    client_alerts: set[str] = set()
    lock = threading.Lock()
    requests = failed = 0
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-alat-")))
        redis_srv = harness.RedisServer(workdir / "redis", appendfsync=args.appendfsync).start()
        stack.callback(redis_srv.stop)
        ctx = mp.get_context("spawn")
        ready, stop, count = ctx.Event(), ctx.Event(), ctx.Value("i", 0)
        seen_path = workdir / "subscriber.json"
        sub = ctx.Process(target=subscribe, name="subscriber", daemon=True,
                          args=(redis_srv.url, STREAM, str(seen_path), ready, stop, count))
        sub.start()
        if not ready.wait(60):
            raise SystemExit("the subscriber process did not start")
        harness.progress("starting_daemon", threads=args.threads)
        d = stack.enter_context(harness.daemon(redis_srv.url, workdir, policy_text=latency_policy(args.max_tokens),
                                               stream=STREAM, threads=args.threads))
        harness.progress("daemon_ready")
        t0 = time.perf_counter()
        counter = iter(range(10**9))

        def worker() -> None:
            nonlocal requests, failed
            with httpx.Client() as client:
                while True:
                    with lock:
                        if len(client_alerts) >= args.alerts:
                            return
                        i = next(counter)
                    res = harness.stream_chat(client, d.base, [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
                                              max_tokens=args.max_tokens, temperature=0.7, seed=i)
                    with lock:
                        requests += 1
                        failed += not res.ok
                        client_alerts.update(a["alert_id"] for a in res.alerts)
                        n = len(client_alerts)
                    if requests % 5 == 0:
                        harness.progress("alerts", requests=requests, alerts=n, subscriber=count.value)

        with ThreadPoolExecutor(args.concurrency) as pool:
            for f in [pool.submit(worker) for _ in range(args.concurrency)]:
                f.result()
        elapsed = time.perf_counter() - t0
        deadline = time.monotonic() + 30  # the last alerts may still be on their way
        while time.monotonic() < deadline and count.value < len(client_alerts):
            time.sleep(0.05)
        time.sleep(0.5)  # one more XREAD turn: anything late or duplicated shows up
        stop.set()
        sub.join(30)
        seen = {k: tuple(v) for k, v in json.loads(seen_path.read_text()).items()}
    timed = [seen[a] for a in client_alerts if a in seen]
    if not timed:
        raise SystemExit("no alert reached the subscriber")
    result: dict[str, Any] = {
        **summary("", [arr - ts for ts, _e, arr in timed]),
        "alerts": len(timed), "alerts_raised": len(client_alerts),
        "lost": len(client_alerts - set(seen)), "requests": requests, "failed": failed,
        **summary("to_redis_", [max(0.0, e - ts) for ts, e, _arr in timed]),
        **summary("to_subscriber_", [max(0.0, arr - e) for _ts, e, arr in timed]),
        "goal_p99_ms_le": 20, "elapsed_s": round(elapsed, 1),
        "max_tokens": args.max_tokens, "concurrency": args.concurrency, "threads": args.threads,
        "appendfsync": args.appendfsync, "machine": harness.machine(),
    }
    result["goal_met"] = result["p99_ms"] <= 20 and result["lost"] == 0
    harness.result_line(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
