#!/usr/bin/env bash
# Build llama-cpp-python (llama.cpp's Python bindings) from source into .venv, for the
# llama.cpp column of ops/bench/generation.py. Optional: nothing in saeguard imports it.
# Portable x86 flags: a native build crashed with a general protection fault in
# libggml-cpu on a machine of this kind, so AVX2/FMA/F16C only, no AVX-512 or AMX.
# Takes ~3-5 minutes on 2 cores; re-running when it is installed does nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VERSION=0.3.36
if .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('llama-cpp-python') != '$VERSION')" 2>/dev/null; then
  echo "[llamacpp] llama-cpp-python $VERSION already installed" >&2
  exit 0
fi
echo "[llamacpp] building llama-cpp-python $VERSION from source (a few minutes)" >&2
CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF" \
  CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
  .venv/bin/python -m pip install -q --no-binary llama-cpp-python "llama-cpp-python==$VERSION"
.venv/bin/python -c "import llama_cpp; print('[llamacpp] ready:', llama_cpp.__version__)" >&2
