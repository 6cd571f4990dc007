#!/usr/bin/env bash
# The main job: set-up (idempotent), a local redis-server with AOF (ops/redis.sh, only
# when none answers on the port), then the sidecar daemon on 127.0.0.1:8765 with the
# default guard pack and policies/default.yaml. Extra arguments go to `saeguard serve`
# (e.g. ./ops/run.sh --port 9000 --policy policies/strict.yaml). Ctrl-C / SIGTERM drains
# in-flight streams, flushes alerts and exits 0.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash ops/setup.sh
bash ops/redis.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec .venv/bin/saeguard serve --pack classifiers/packs/smollm2-135m-instruct \
  --policy policies/default.yaml --spool-dir var/spool "$@"
