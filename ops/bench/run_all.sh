#!/usr/bin/env bash
# Run every benchmark (one after another: they need the whole machine), keep each one's
# last stdout line in ops/bench/results/<name>.json and its progress in ops/bench/results/<name>.log, then
# regenerate README's "Performance and Reliability" section (ops/bench/report.py).
# Takes ~30-40 min on 2 CPU cores. Run it on an otherwise idle machine.
#   bash ops/bench/run_all.sh [name ...]     # default: all
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
bash ops/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
PY=.venv/bin/python
OUT=ops/bench/results
mkdir -p "$OUT"
declare -A CMD=(
  [concurrency]="ops/bench/concurrency.py"
  [faults_fail_open]="ops/bench/faults.py --mode fail_open"
  [faults_fail_closed]="ops/bench/faults.py --mode fail_closed"
  [fuzz]="ops/bench/fuzz.py"
  [fuzz_concurrent]="ops/bench/fuzz.py --concurrency 8"
  [soak]="ops/bench/soak.py --png ops/bench/results/soak_rss.png"
  [alert_latency]="ops/bench/alert_latency.py"
  [alert_memory]="ops/bench/alert_memory.py"
  [generation]="ops/bench/generation.py"
  [join_stall]="ops/bench/join_stall.py"
)
ORDER=(concurrency alert_latency alert_memory faults_fail_open faults_fail_closed soak fuzz fuzz_concurrent generation join_stall)
if [ $# -gt 0 ]; then ORDER=("$@"); fi
for name in "${ORDER[@]}"; do
  echo "[bench] $name: ${CMD[$name]}" >&2
  # shellcheck disable=SC2086
  $PY ${CMD[$name]} > "$OUT/$name.out" 2> "$OUT/$name.log"
  tail -n 1 "$OUT/$name.out" > "$OUT/$name.json"
  echo "[bench] $name: $(cat "$OUT/$name.json" | cut -c1-300)" >&2
done
$PY ops/bench/report.py
