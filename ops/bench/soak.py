"""Memory soak: many requests through a real ``saeguard serve``; does its RSS stay flat?

    .venv/bin/python ops/bench/soak.py [--requests 1000] [--concurrency 4] [--max-tokens 8] \\
        [--warmup 100] [--sample-every 25] [--threads 2] [--png var/bench/soak_rss.png]

A leak in a long-running sidecar shows up only after many requests, so every code path a
request can take runs here, over and over: streaming and non-streaming chat, ``/v1/score``,
clients that hang up mid-stream, refused requests (422), alerts on every request (prompt
and response rules), clamps, policy stops, and the default policy's calibrated rules
(which fire on some requests only). The daemon is a separate process on a private
``redis-server`` (harness.daemon), as in production.

RSS of the daemon (``/proc/PID/status`` VmRSS) is sampled every ``--sample-every``
finished requests. ``rss_warm_mb`` is the sample at ``--warmup`` requests (allocator
pools, caches and lazy imports filled), ``rss_end_mb`` after the last request (and after
the alert sink drained), ``rss_growth = (end - warm) / warm``; goal < 0.05.
``rss_slope_mb_per_1k`` is the least-squares slope of the samples after warm-up (a leak
is a steady slope; allocator noise is not). A PNG of RSS over requests goes to ``--png``.

Prints progress on stderr and ONE JSON line (the last line of stdout).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

STREAM = "bench:soak"

SOAK_RULES = """\
- id: soak-prompt-alert
  when: {probe: sycophancy, threshold: 0.0, scope: prompt}
  then: [{alert: {severity: info}}]
- id: soak-response-alert
  when: {probe: deception, threshold: 0.0, scope: response, min_consecutive: 2}
  then: [{alert: {severity: low}}]
- id: soak-clamp
  when: {probe: unsafe_code, threshold: 0.0, scope: response, min_consecutive: 3}
  then:
    - alert: {severity: medium}
    - clamp: {top_k: 8, value: 0.0, tokens: 3}
- id: soak-stop
  when: {probe: bias, threshold: 0.0, scope: response, min_consecutive: 7}
  then: [{stop: {message: "[stopped by the soak policy]"}}]
"""

PROMPTS = [
    "Write a Python function that runs a shell command given by the user.",
    "I think the earth is flat, and I'm sure you agree with me, right?",
    "Tell me a short story about a lighthouse keeper.",
    "Are women worse at math than men?",
    "Explain how to store passwords safely in a web application.",
    "What's the capital of Australia? My teacher said Sydney.",
    "Summarise the plot of Hamlet in two sentences.",
    "Write SQL that looks up a user by the name typed into a form.",
]

KINDS = ["stream", "stream", "stream", "stream", "json", "json", "score", "score", "abort", "invalid"]
"""Request mix, by request index modulo 10."""


def soak_policy() -> str:
    """The default policy's rules (calibrated: fire on some requests) plus rules that fire
    on every request, so alerts, clamps and stops all run."""
    policy = yaml.safe_load((harness.ROOT / "policies" / "default.yaml").read_text())
    policy["name"] = "soak"
    policy["rules"] = list(policy["rules"]) + yaml.safe_load(SOAK_RULES)
    return yaml.safe_dump(policy, sort_keys=False)


class Outcome:
    """Counters shared by the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = 0
        self.failed = 0
        self.by_kind: dict[str, int] = {}
        self.alerts_seen = 0
        self.stops = 0
        self.clamped_responses = 0
        self.errors: list[str] = []


def messages_for(i: int) -> list[dict[str, str]]:
    text = PROMPTS[i % len(PROMPTS)]
    return [{"role": "user", "content": f"{text} (#{i})"}]


def one_request(client: httpx.Client, base: str, i: int, max_tokens: int) -> tuple[bool, int, bool, bool, str]:
    """Run request ``i``; returns (as expected, alerts seen, stopped, clamped, error)."""
    kind = KINDS[i % len(KINDS)]
    rng = random.Random(i)
    n = max(1, max_tokens - rng.randrange(0, 4))  # some reach the stop rule, some do not
    temperature = 0.0 if i % 3 == 0 else 0.8
    msgs = messages_for(i)
    if kind == "stream":
        res = harness.stream_chat(client, base, msgs, max_tokens=n, temperature=temperature, seed=i)
        clamped = any(a.get("action") == "clamp" for a in res.alerts)
        return res.ok, len(res.alerts), res.finish_reason == "content_filter", clamped, res.error or ""
    if kind == "json":
        body = {"model": "default", "messages": msgs, "max_tokens": n, "temperature": temperature, "seed": i}
        r = client.post(f"{base}/v1/chat/completions", json=body, headers=harness.AUTH, timeout=300)
        if r.status_code != 200:
            return False, 0, False, False, f"json {r.status_code}: {r.text[:200]}"
        data = r.json()
        alerts = data["saeguard"]["alerts"]
        stopped = data["choices"][0]["finish_reason"] == "content_filter"
        return True, len(alerts), stopped, any(a["action"] == "clamp" for a in alerts), ""
    if kind == "score":
        convo = msgs + [{"role": "assistant", "content": "Sure. " * (1 + i % 5) + "Here it is."}]
        r = client.post(f"{base}/v1/score", json={"messages": convo, "request_id": f"soak-{i}"},
                        headers=harness.AUTH, timeout=300)
        if r.status_code != 200:
            return False, 0, False, False, f"score {r.status_code}: {r.text[:200]}"
        return True, len(r.json()["alerts"]), False, False, ""
    if kind == "abort":  # the client hangs up after the first token
        body = {"model": "default", "messages": msgs, "max_tokens": max(n, 4), "temperature": 0.0, "stream": True}
        with client.stream("POST", f"{base}/v1/chat/completions", json=body, headers=harness.AUTH,
                           timeout=300) as r:
            if r.status_code != 200:
                r.read()
                return False, 0, False, False, f"abort {r.status_code}: {r.text[:200]}"
            for line in r.iter_lines():
                if line.startswith("data: ") and '"content":"' in line and '"role"' not in line:
                    break
        return True, 0, False, False, ""
    # invalid: a body the daemon must refuse (422) without leaking anything
    bad = [{"model": "default", "messages": msgs, "max_tokens": 10**6},
           {"model": "default", "messages": [], "max_tokens": 4},
           {"model": "default", "messages": msgs, "temperature": 9}][i % 3]
    r = client.post(f"{base}/v1/chat/completions", json=bad, headers=harness.AUTH, timeout=60)
    ok = 400 <= r.status_code < 500
    return ok, 0, False, False, "" if ok else f"invalid got {r.status_code}"


def metric_series(base: str) -> set[str]:
    """Time series in ``/metrics`` (label cardinality must not grow with requests)."""
    text = httpx.get(f"{base}/metrics", headers=harness.AUTH, timeout=10).text
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def slope_per_1k(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of (requests, MB) in MB per 1,000 requests."""
    if len(points) < 3:
        return None
    xs = [float(x) for x, _ in points]
    ys = [y for _, y in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return None
    return 1000.0 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def save_png(path: Path, series: list[tuple[int, float]], warmup: int, result: dict[str, Any]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        harness.progress("png_skipped", reason="matplotlib not installed")
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot([x for x, _ in series], [y for _, y in series], marker=".", lw=1)
    ax.axvline(warmup, color="grey", ls="--", lw=1, label=f"warm-up ({warmup} requests)")
    ax.set_xlabel("requests finished")
    ax.set_ylabel("daemon RSS (MB)")
    growth = result.get("rss_growth")
    ax.set_title(f"saeguard soak: {result['requests']} requests, concurrency {result['concurrency']}, "
                 f"growth {growth * 100:.2f}%" if growth is not None else "saeguard soak")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1000, help="requests in all (default 1000)")
    ap.add_argument("--concurrency", type=int, default=4, help="concurrent clients (default 4)")
    ap.add_argument("--max-tokens", type=int, default=8, help="largest max_tokens of a request (default 8)")
    ap.add_argument("--warmup", type=int, default=100, help="requests before the baseline RSS (default 100)")
    ap.add_argument("--sample-every", type=int, default=25, help="RSS sample every N requests (default 25)")
    ap.add_argument("--threads", type=int, default=2, help="daemon torch threads (default 2)")
    ap.add_argument("--png", type=Path, default=harness.ROOT / "var" / "bench" / "soak_rss.png",
                    help="where to save the RSS plot (default var/bench/soak_rss.png)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the daemon's log and spool here")
    args = ap.parse_args()
    warmup = min(args.warmup, max(1, args.requests // 2))

    out = Outcome()
    series: list[tuple[int, float]] = []
    marks: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-soak-")))
        redis_srv = stack.enter_context(harness.private_redis())
        harness.progress("starting_daemon", threads=args.threads)
        d = stack.enter_context(harness.daemon(redis_srv.url, workdir, policy_text=soak_policy(),
                                               stream=STREAM, threads=args.threads))
        rss0 = d.rss_bytes() / 2**20
        series.append((0, rss0))
        harness.progress("daemon_ready", rss_mb=round(rss0, 1))
        local = threading.local()
        t0 = time.perf_counter()

        def run(i: int) -> None:
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = httpx.Client()
            try:
                ok, n_alerts, stopped, clamped, err = one_request(client, d.base, i, args.max_tokens)
            except httpx.HTTPError as exc:
                ok, n_alerts, stopped, clamped, err = False, 0, False, False, f"{type(exc).__name__}: {exc}"
            kind = KINDS[i % len(KINDS)]
            with out.lock:
                out.done += 1
                out.by_kind[kind] = out.by_kind.get(kind, 0) + 1
                out.alerts_seen += n_alerts
                out.stops += stopped
                out.clamped_responses += clamped
                if not ok:
                    out.failed += 1
                    if len(out.errors) < 10:
                        out.errors.append(f"#{i} {kind}: {err}")
                done = out.done
                if done % args.sample_every == 0 or done == warmup:
                    rss = d.rss_bytes() / 2**20
                    series.append((done, rss))
                    if done == warmup:
                        marks["warm"] = rss
                        marks["metrics_warm"] = metric_series(d.base)
                    if done % (args.sample_every * 4) == 0 or done == warmup:
                        harness.progress("soak", done=done, rss_mb=round(rss, 1), failed=out.failed,
                                         rps=round(done / (time.perf_counter() - t0), 2))

        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(run, range(args.requests)))
        elapsed = time.perf_counter() - t0
        # let the alert sink drain before the final sample (it is part of steady state)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                if httpx.get(f"{d.base}/readyz", timeout=5).json()["alerts"]["queue_depth"] == 0:
                    break
            time.sleep(0.2)
        time.sleep(1.0)
        rss_end = d.rss_bytes() / 2**20
        series.append((args.requests, rss_end))
        import redis as redis_lib

        with redis_lib.Redis.from_url(redis_srv.url) as rc:
            stream_len = int(rc.xlen(STREAM))
        metrics_end = metric_series(d.base)
    warm = marks.get("warm", rss0)
    series_warm: set[str] = marks.get("metrics_warm", set())
    growth = (rss_end - warm) / warm
    result: dict[str, Any] = {
        "requests": args.requests, "failed": out.failed,
        "rss_start_mb": round(rss0, 1), "rss_warm_mb": round(warm, 1), "rss_end_mb": round(rss_end, 1),
        "rss_max_mb": round(max(y for _, y in series), 1), "rss_growth": round(growth, 4) + 0.0,
        "rss_slope_mb_per_1k": _round(slope_per_1k([p for p in series if p[0] >= warmup]), 2),
        "goal_rss_growth_lt": 0.05, "goal_met": growth < 0.05 and out.failed == 0,
        "by_kind": out.by_kind, "alerts_seen_by_clients": out.alerts_seen, "stream_len": stream_len,
        "policy_stops": out.stops, "clamped_responses": out.clamped_responses,
        "metric_series_warm": len(series_warm), "metric_series_end": len(metrics_end),
        "metric_series_new": sorted(metrics_end - series_warm)[:20],
        "elapsed_s": round(elapsed, 1), "rps": round(args.requests / elapsed, 2),
        "concurrency": args.concurrency, "max_tokens": args.max_tokens, "warmup": warmup,
        "sample_every": args.sample_every, "threads": args.threads,
        "rss_series": [[x, round(y, 1)] for x, y in series],
        "errors": out.errors, "png": str(args.png), "machine": harness.machine(),
    }
    if not save_png(args.png, series, warmup, result):
        result["png"] = None
    harness.result_line(result)
    return 0


def _round(x: float | None, nd: int) -> float | None:
    return None if x is None else round(x, nd)


if __name__ == "__main__":
    sys.exit(main())
