#!/usr/bin/env bash
# Start a throwaway Redis for tests (idempotent): no persistence, 127.0.0.1 only.
#   REDIS_PORT  TCP port (default 56379)
# The last stdout line is the Redis URL.
set -euo pipefail

REDIS_PORT="${REDIS_PORT:-56379}"
export DEBIAN_FRONTEND=noninteractive

log() { echo "[start_redis] $*" >&2; }

if ! command -v redis-server >/dev/null 2>&1; then
    log "installing redis-server"
    apt-get update -qq >&2
    # redis-tools (redis-cli) comes in as a dependency.
    apt-get install -y -qq --no-install-recommends redis-server >&2
fi

if [[ "$(redis-cli -h 127.0.0.1 -p "${REDIS_PORT}" ping 2>/dev/null || true)" == "PONG" ]]; then
    log "redis already answers on 127.0.0.1:${REDIS_PORT}"
else
    log "starting redis on 127.0.0.1:${REDIS_PORT}"
    redis-server --bind 127.0.0.1 --port "${REDIS_PORT}" --daemonize yes \
        --save '' --appendonly no \
        --pidfile "/tmp/botgpt-redis-${REDIS_PORT}.pid" \
        --logfile "/tmp/botgpt-redis-${REDIS_PORT}.log" >&2
    # --daemonize returns before the socket is open; wait for PING.
    for _ in $(seq 1 50); do
        if [[ "$(redis-cli -h 127.0.0.1 -p "${REDIS_PORT}" ping 2>/dev/null || true)" == "PONG" ]]; then
            break
        fi
        sleep 0.1
    done
    if [[ "$(redis-cli -h 127.0.0.1 -p "${REDIS_PORT}" ping 2>/dev/null || true)" != "PONG" ]]; then
        log "redis did not start; see /tmp/botgpt-redis-${REDIS_PORT}.log"
        exit 1
    fi
fi

echo "redis://127.0.0.1:${REDIS_PORT}/0"
