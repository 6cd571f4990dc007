#!/usr/bin/env bash
# Set-up (idempotent), then the whole test suite, slow end-to-end tests included.
# Extra arguments go to pytest (e.g. ./ops/test.sh -m "not slow" for the quick loop).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash ops/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec .venv/bin/python -m pytest "$@"
