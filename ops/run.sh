#!/usr/bin/env bash
# Set-up (idempotent), then the main job on the embedded default model.
# Extra arguments replace the demo prompt's arguments to `saeguard generate`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash ops/setup.sh
if [ "$#" -eq 0 ]; then
  set -- "In two sentences, what does a lighthouse keeper do?" --max-tokens 96
fi
exec .venv/bin/saeguard generate "$@"
