#!/usr/bin/env bash
# Install everything the tests need, start a throwaway PostgreSQL (+pgvector) and
# Redis on 127.0.0.1, lint, type-check, validate the deployment files, build and smoke-test
# the container image, and run the whole suite on SQLite and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
BOTGPT_TEST_PG_URL=$(scripts/start_postgres.sh | tail -n 1)
export BOTGPT_TEST_PG_URL
BOTGPT_TEST_REDIS_URL=$(scripts/start_redis.sh | tail -n 1)
export BOTGPT_TEST_REDIS_URL
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
# Deployment files validated offline (hadolint, compose/workflow schemas, k8s schemas, yamllint).
scripts/lint_deploy.sh
# Container step: build the image and get an answer from it (skips with a message where
# the machine cannot run containers; BOTGPT_CONTAINER_SMOKE=0 skips it on purpose).
scripts/container_smoke.sh
# Headless Chromium for the browser tests (tests/web), from the distribution.
scripts/install_browser.sh
exec .venv/bin/python -m pytest "$@"
