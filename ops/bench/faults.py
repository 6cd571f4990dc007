"""Fault run: streaming chat requests that raise alerts while ``redis-server`` is killed
(``kill -9``) and restarted on the same port mid-run, and while the policy file is edited
and reloaded over and over. Bounded and loopback only (a private redis-server, one
``saeguard serve`` on 127.0.0.1).

    .venv/bin/python ops/bench/faults.py [--requests 100] [--concurrency 8] [--max-tokens 16]
        [--mode fail_open|fail_closed] [--reload-every 0.5] [--threads 2]

The policy has two alert rules that always fire (``threshold: 0.0`` on the ``deception``
probe, one on the prompt, one on the response, each with a cooldown longer than the
request), so each served request raises exactly two alerts, each with an ``alert_id``
that the client sees in the SSE chunks' ``saeguard.alerts``. Redis is killed once
``--kill-at`` of the requests have finished and restarted once ``--restart-at`` have
finished (and it was down at least ``--min-down-s``). After the last request the bench
waits for the daemon's spool to drain (``/readyz``: ``alerts.spooled == 0``, queue
empty, Redis connected), then reads the stream with XRANGE and compares.

Prints progress on stderr and ONE JSON line (the last line of stdout); keys are
described in ops/bench/README.md ("Fault run"). Goals (issue 8): ``lost == 0``,
``alerts_duplicated == 0``, ``failed == 0`` under ``fail_open``; under ``fail_closed``
every refusal is a 503 that says alerts cannot reach Redis (``refused_unclear == 0``);
``version_mismatches == 0`` with reloads going on.

:func:`run` does the work against any running daemon, so the test suite runs the same
scenario at small size (tests/integration/server/test_fault_scenario.py).
"""

from __future__ import annotations

import argparse
import collections
import math
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

try:
    from ops.bench import harness
except ImportError:  # run as a script: ops/bench is sys.path[0], the repo root is not
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from ops.bench import harness

from tests.redis_server import RedisServer  # noqa: E402  (harness put the repo root on sys.path)

SEVERITIES = ("high", "medium", "critical", "low")
ALERTS_PER_REQUEST = 2
REFUSAL_WORDS = ("Redis", "fail_closed")


def fault_policy(mode: str, edit: int = 0) -> str:
    """The policy: two rules that always fire once per request. ``edit`` changes the
    response rule's severity and the description (so every edit is a new version)."""
    return f"""\
name: faults
description: fault bench policy, edit {edit}
mode: enforce
on_monitor_error: {mode}
rules:
  - id: response-always
    when: {{probe: deception, threshold: 0.0, scope: response}}
    then:
      - alert: {{severity: {SEVERITIES[edit % len(SEVERITIES)]}}}
    cooldown_tokens: 100000
  - id: prompt-always
    when: {{probe: deception, threshold: 0.0, scope: prompt}}
    then:
      - alert: {{severity: low}}
    cooldown_tokens: 100000
"""


@dataclass
class Target:
    """A running daemon and the Redis it writes to."""

    base: str
    """The daemon's URL."""
    token: str
    """Its bearer token (chat and policy reload)."""
    policy_path: Path
    """The policy file it serves (rewritten by the bench, then reloaded over HTTP)."""
    stream: str
    """The alert stream key."""
    redis: RedisServer
    """The redis-server the daemon writes to (killed and restarted by the bench)."""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class _Outage:
    """When Redis was down, and what the daemon's spool did meanwhile."""

    killed_at: float | None = None
    restarted_at: float | None = None
    spooled_peak: int = 0
    events: list[str] = field(default_factory=list)


def _readyz(target: Target) -> dict[str, Any]:
    try:
        return dict(httpx.get(f"{target.base}/readyz", timeout=5).json())
    except (httpx.HTTPError, ValueError):
        return {}


def _set_policy(target: Target, text: str) -> str:
    """Write the policy file and reload it; its version (raises on rejection)."""
    target.policy_path.write_text(text)
    r = httpx.post(f"{target.base}/v1/policy/reload", headers=target.auth, timeout=30)
    r.raise_for_status()
    return str(r.json()["version"])


class _Reloader(threading.Thread):
    """Edits the policy file and POSTs /v1/policy/reload every ``every`` seconds."""

    def __init__(self, target: Target, mode: str, every: float) -> None:
        super().__init__(name="policy-reloader", daemon=True)
        self.target, self.mode, self.every = target, mode, every
        self.stop = threading.Event()
        self.reloads = 0
        self.errors: list[str] = []

    def run(self) -> None:
        edit = 0
        while not self.stop.wait(self.every):
            edit += 1
            try:
                _set_policy(self.target, fault_policy(self.mode, edit))
                self.reloads += 1
            except httpx.HTTPError as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")


def _with_token(token: str) -> Callable[[httpx.Request], None]:
    """An httpx request hook that puts this daemon's token on every request
    (``harness.stream_chat`` sends the bench's own token)."""

    def hook(request: httpx.Request) -> None:
        request.headers["Authorization"] = f"Bearer {token}"

    return hook


def _wait_drained(target: Target, timeout: float) -> bool:
    """Every alert the daemon published is in Redis (nothing queued or spooled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alerts = _readyz(target).get("alerts") or {}
        if alerts.get("redis_connected") and alerts.get("spooled") == 0 and alerts.get("queue_depth") == 0:
            return True
        time.sleep(0.2)
    return False


def _stream_ids(target: Target) -> list[str]:
    """``alert_id`` of every stream entry, in stream order (XRANGE in pages)."""
    ids: list[str] = []
    start = "-"
    with target.redis.client() as c:
        while True:
            page = c.xrange(target.stream, min=start, max="+", count=1000)
            if not page:
                return ids
            for entry_id, fields in page:
                ids.append((fields.get(b"alert_id") or b"").decode())
            last = page[-1][0].decode()
            ms, seq = last.split("-")
            start = f"{ms}-{int(seq) + 1}"


def run(target: Target, requests: int = 100, concurrency: int = 8, mode: str = "fail_open",
        max_tokens: int = 16, reload_every: float = 0.5, kill_at: float = 0.25, restart_at: float = 0.6,
        min_down_s: float = 2.0, drain_timeout_s: float = 120.0) -> dict[str, Any]:
    """Run the fault scenario against ``target``; the result dict (without machine)."""
    if mode not in ("fail_open", "fail_closed"):
        raise ValueError(f"mode must be fail_open or fail_closed, not {mode!r}")
    if not target.redis.running:
        target.redis.start()
    _set_policy(target, fault_policy(mode))
    kill_after = max(1, math.ceil(kill_at * requests))
    restart_after = max(kill_after, math.ceil(restart_at * requests))

    outage = _Outage()
    done = 0
    done_cond = threading.Condition()
    all_done = threading.Event()

    def controller() -> None:
        """Kill Redis after ``kill_after`` requests, restart it after ``restart_after``."""
        with done_cond:
            done_cond.wait_for(lambda: done >= kill_after or all_done.is_set())
        target.redis.kill()
        outage.killed_at = time.perf_counter()
        harness.progress("redis_killed", after_requests=done)
        while True:
            alerts = _readyz(target).get("alerts") or {}
            spooled = int(alerts.get("spooled") or 0)
            if spooled > outage.spooled_peak:
                harness.progress("alerts_spooled", spooled=spooled, queue_depth=alerts.get("queue_depth"),
                                 requests_done=done, down_s=round(time.perf_counter() - outage.killed_at, 2))
            outage.spooled_peak = max(outage.spooled_peak, spooled)
            down = time.perf_counter() - outage.killed_at
            if down >= min_down_s and (done >= restart_after or all_done.is_set()):
                break
            time.sleep(0.1)
        target.redis.restart()
        outage.restarted_at = time.perf_counter()
        harness.progress("redis_restarted", after_requests=done, down_s=round(outage.restarted_at - outage.killed_at, 2),
                         spooled_peak=outage.spooled_peak)

    reloader = _Reloader(target, mode, reload_every) if reload_every > 0 else None
    local = threading.local()
    clients: list[httpx.Client] = []

    def one(i: int) -> harness.StreamResult:
        nonlocal done
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(event_hooks={"request": [_with_token(target.token)]})
            clients.append(client)
        messages = [{"role": "user", "content": f"Give me one short fact about the number {i}."}]
        res = harness.stream_chat(client, target.base, messages, max_tokens=max_tokens)
        with done_cond:
            done += 1
            done_cond.notify_all()
        return res

    ctl = threading.Thread(target=controller, name="redis-controller", daemon=True)
    t0 = time.perf_counter()
    ctl.start()
    if reloader is not None:
        reloader.start()
    results: list[harness.StreamResult] = []
    with ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(one, i) for i in range(requests)]
        for n, fut in enumerate(as_completed(futures), start=1):
            results.append(fut.result())
            if n % 10 == 0 or n == requests:
                harness.progress("requests_done", done=n, of=requests, elapsed_s=round(time.perf_counter() - t0, 1))
    all_done.set()
    for client in clients:
        client.close()
    with done_cond:
        done_cond.notify_all()
    run_s = time.perf_counter() - t0
    if reloader is not None:
        reloader.stop.set()
        reloader.join(30)
    ctl.join(60)
    t_drain = time.perf_counter()
    drained = _wait_drained(target, drain_timeout_s)
    drain_s = time.perf_counter() - t_drain
    harness.progress("drained" if drained else "drain_timeout", drain_s=round(drain_s, 2))

    # -- what the clients saw ----------------------------------------------------------------
    expected: list[str] = []
    failed, refused, refused_unclear, refused_before_kill, mismatches, tokens = 0, 0, 0, 0, 0, 0
    errors: collections.Counter[str] = collections.Counter()
    per_request: collections.Counter[int] = collections.Counter()
    versions: set[str] = set()
    for res in results:
        expected.extend(str(a.get("alert_id")) for a in res.alerts)
        tokens += res.tokens
        if res.status == 503:  # refused at admission (fail_closed while Redis is away)
            refused += 1
            if outage.killed_at is None or res.t_start < outage.killed_at:
                refused_before_kill += 1
            if not all(w in (res.error or "") for w in REFUSAL_WORDS):
                refused_unclear += 1
                errors[f"503: {res.error}"[:200]] += 1
            continue
        if not res.ok:
            failed += 1
            errors[f"{res.status}: {res.error}"[:200]] += 1
            continue
        per_request[len(res.alerts)] += 1
        versions.add(res.header_policy_version)
        alert_versions = {str(a.get("policy_version")) for a in res.alerts}
        if res.policy_versions | alert_versions != {res.header_policy_version}:
            mismatches += 1

    # -- what Redis has --------------------------------------------------------------------------
    stream_ids = _stream_ids(target)
    counts = collections.Counter(stream_ids)
    expected_set = set(expected)
    received = sum(1 for a in expected_set if a in counts)
    # the daemon serves again once Redis is back (one more request, not counted above)
    with httpx.Client(event_hooks={"request": [_with_token(target.token)]}) as client:
        after = harness.stream_chat(client, target.base, [{"role": "user", "content": "Say hi."}],
                                    max_tokens=max_tokens)
    result: dict[str, Any] = {
        "requests": requests,
        "mode": mode,
        "failed": failed,
        "refused": refused,
        "refused_unclear": refused_unclear,
        "refused_before_kill": refused_before_kill,
        "alerts_expected": len(expected_set),
        "alerts_received": received,
        "alerts_duplicated": sum(n - 1 for n in counts.values() if n > 1),
        "lost": len(expected_set - set(counts)),
        "alerts_other": sum(1 for a in counts if a not in expected_set),
        "alerts_seen_twice_by_clients": len(expected) - len(expected_set),
        "alerts_per_request": {str(k): v for k, v in sorted(per_request.items())},
        "reloads": reloader.reloads if reloader else 0,
        "reload_errors": len(reloader.errors) if reloader else 0,
        "policy_versions_served": len(versions),
        "version_mismatches": mismatches,
        "redis_down_s": round((outage.restarted_at or 0) - (outage.killed_at or 0), 2),
        "spooled_peak": outage.spooled_peak,
        "drained": drained,
        "recovered": after.ok,
        "drain_s": round(drain_s, 2),
        "run_s": round(run_s, 2),
        "tokens": tokens,
        "errors": dict(errors.most_common(5)),
    }
    if reloader is not None and reloader.errors:
        result["reload_error_sample"] = reloader.errors[:3]
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--mode", default="fail_open", choices=("fail_open", "fail_closed"),
                    help="the policy's on_monitor_error")
    ap.add_argument("--reload-every", type=float, default=0.5,
                    help="seconds between policy edits + reloads during the run (0: none)")
    ap.add_argument("--kill-at", type=float, default=0.25, help="kill Redis after this fraction of requests")
    ap.add_argument("--restart-at", type=float, default=0.6, help="restart it after this fraction")
    ap.add_argument("--min-down-s", type=float, default=2.0, help="keep Redis down at least this long")
    ap.add_argument("--drain-timeout", type=float, default=120.0)
    ap.add_argument("--threads", type=int, default=2, help="daemon torch threads")
    args = ap.parse_args()

    params = {k: v for k, v in vars(args).items()}
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp, harness.private_redis(Path(tmp) / "redis") as rs:
        stream = "bench:alerts"
        harness.progress("daemon_starting", redis=rs.url)
        with harness.daemon(rs.url, Path(tmp) / "daemon", policy_text=fault_policy(args.mode), stream=stream,
                            threads=args.threads) as d:
            harness.progress("daemon_ready", base=d.base)
            target = Target(d.base, harness.TOKEN, d.policy, stream, rs)
            result = run(target, requests=args.requests, concurrency=args.concurrency, mode=args.mode,
                         max_tokens=args.max_tokens, reload_every=args.reload_every, kill_at=args.kill_at,
                         restart_at=args.restart_at, min_down_s=args.min_down_s,
                         drain_timeout_s=args.drain_timeout)
    result["machine"] = harness.machine()
    result["params"] = params
    harness.result_line(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
