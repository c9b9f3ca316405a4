#!/usr/bin/env bash
# Install everything and start BOT GPT on the embedded default (SQLite, local model).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/botgpt serve "$@"
