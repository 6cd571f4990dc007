"""Render README's "Performance and Reliability" section from the benchmarks' JSON lines.

    .venv/bin/python ops/bench/report.py [--results ops/bench/results] [--readme README.md]

``ops/bench/run_all.sh`` runs every benchmark and saves each one's last stdout line as
``ops/bench/results/<name>.json``; this script turns those files into a table (measured value,
goal, met or not, the machine) and replaces the text between the
``<!-- bench:start -->`` and ``<!-- bench:end -->`` markers in the README. Nothing is
typed in by hand: a benchmark that has not been run shows as "not run".
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
START, END = "<!-- bench:start -->", "<!-- bench:end -->"

Row = tuple[str, str, str, Callable[[dict[str, Any]], tuple[str, bool | None]]]


def _f(x: Any, nd: int = 2) -> str:
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


ROWS: list[Row] = [
    ("concurrency", "streaming throughput, 1 → 8 clients (continuous batching)", "`speedup_8` ≥ 3",
     lambda r: (f"tok/s {_f(r['tok_s_1'], 1)} / {_f(r['tok_s_4'], 1)} / {_f(r['tok_s_8'], 1)} at 1/4/8 clients; "
                f"`speedup_8` **{_f(r['speedup_8'])}**", r["speedup_8"] >= 3)),
    ("faults_fail_open", "100 streams at concurrency 8, Redis killed and restarted, policy reloaded "
     "every 0.5 s (`fail_open`)", "`lost` = 0, `failed` = 0, 0 version mismatches",
     lambda r: (f"failed {r['failed']}, alerts {r['alerts_received']}/{r['alerts_expected']}, lost "
                f"**{r['lost']}**, duplicated {r['alerts_duplicated']}, {r['reloads']} reloads, "
                f"{r['version_mismatches']} version mismatches",
                r["lost"] == 0 and r["failed"] == 0 and r["version_mismatches"] == 0)),
    ("faults_fail_closed", "the same with `fail_closed`", "every affected request refused with a clear "
     "error; `lost` = 0",
     lambda r: (f"refused {r['refused']} (unclear {r['refused_unclear']}), failed {r['failed']}, lost "
                f"**{r['lost']}**, duplicated {r['alerts_duplicated']}",
                r["lost"] == 0 and r["failed"] == 0 and r["refused_unclear"] == 0)),
    ("fuzz", "hypothesis-generated requests against the running daemon", "0 server errors, 0 crashes",
     lambda r: (f"{r['cases']} cases: server errors **{r['server_errors']}**, crashes **{r['crashes']}**",
                r["server_errors"] == 0 and r["crashes"] == 0)),
    ("fuzz_concurrent", "the same cases, 8 at a time from 8 client threads", "0 server errors, 0 crashes, "
     "nothing left in flight",
     lambda r: (f"{r['cases']} cases at concurrency {r['concurrency']}: server errors **{r['server_errors']}**, "
                f"crashes **{r['crashes']}**, in flight at end {r['in_flight_at_end']}",
                r["server_errors"] == 0 and r["crashes"] == 0 and r["in_flight_at_end"] == 0)),
    ("soak", "1,000 mixed requests, daemon RSS after warm-up vs end", "`rss_growth` < 5%",
     lambda r: (f"{r['requests']} requests, failed {r['failed']}: RSS {_f(r['rss_warm_mb'], 0)} → "
                f"{_f(r['rss_end_mb'], 0)} MB, `rss_growth` **{r['rss_growth'] * 100:.1f}%**",
                r["rss_growth"] < 0.05)),
    ("alert_latency", "token generated → alert visible to an XREAD subscriber", "p99 ≤ 20 ms",
     lambda r: (f"{r.get('alerts', '?')} alerts: p50 {_f(r['p50_ms'], 1)} ms, p99 **{_f(r['p99_ms'], 1)} ms**",
                r["p99_ms"] <= 20)),
    ("alert_memory", "Redis memory per alert: stream entry (capped by MAXLEN) and write-once key "
     "(kept `dedup_ttl_s`)", "for sizing (no goal)",
     lambda r: (f"stream {_f(r['stream_bytes_per_alert'], 0)} B/alert; write-once keys {_f(r['other_bytes_per_alert'], 0)} "
                f"B/alert = **{_f(r['dedup_mb_per_day_at_1_alert_per_s'], 1)} MB per (alert/s)** at a one-day TTL", None)),
    ("generation", "one stream: engine with a clamping tap vs HF `generate`", "`ratio_clamp_vs_hf` ≥ 1.0",
     lambda r: (f"HF {_f(r['hf_tok_s'], 1)} tok/s, engine + clamp tap {_f(r['engine_clamp_tok_s'], 1)} tok/s; "
                f"ratio **{_f(r['ratio_clamp_vs_hf'])}**", r["ratio_clamp_vs_hf"] >= 1.0)),
    ("join_stall", "a ~1,500-token prompt joins a decoding stream: the stream's longest pause, chunked "
     "prefill vs one-forward prefill", "`max_gap_ratio` ≤ 0.5",
     lambda r: (f"longest pause {_f(r['whole']['max_gap_ms'], 0)} → {_f(r['chunked']['max_gap_ms'], 0)} ms "
                f"(chunks of {r['chunk']}); `max_gap_ratio` **{_f(r['max_gap_ratio'])}**; joining prompt's first "
                f"token {_f(r['whole']['ttft_joining_ms'], 0)} → {_f(r['chunked']['ttft_joining_ms'], 0)} ms",
                r["max_gap_ratio"] <= 0.5)),
]


def render(results: Path) -> str:
    lines = ["| benchmark | what | measured | goal | met |", "|---|---|---|---|---|"]
    machines: set[str] = set()
    for name, what, goal, fmt in ROWS:
        path = results / f"{name}.json"
        if not path.is_file():
            lines.append(f"| `{name}` | {what} | not run | {goal} | – |")
            continue
        r = json.loads(path.read_text())
        try:
            text, met = fmt(r)
        except (KeyError, TypeError) as exc:
            text, met = f"unreadable result ({exc})", None
        m = r.get("machine") or {}
        if m:
            machines.add(f"{m.get('cpus')} × {m.get('cpu')}" + (f", GPU {m['gpu']}" if m.get("gpu") else ""))
        mark = "–" if met is None else ("yes" if met else "**no**")
        lines.append(f"| `{name}` | {what} | {text} | {goal} | {mark} |")
    where = "; ".join(sorted(machines)) or "unknown"
    head = [f"Measured on: {where}, no other load. Regenerate with `bash ops/bench/run_all.sh` "
            "(each benchmark's JSON line is kept in `ops/bench/results/`; `ops/bench/README.md` explains every key).", ""]
    return "\n".join(head + lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=ROOT / "ops" / "bench" / "results")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = ap.parse_args()
    text = args.readme.read_text()
    if START not in text or END not in text:
        print(f"{args.readme}: markers {START} / {END} not found", file=sys.stderr)
        return 2
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    args.readme.write_text(f"{head}{START}\n{render(args.results)}\n{END}{tail}")
    print(render(args.results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
