#!/usr/bin/env bash
# Stop the throwaway test cluster started by start_postgres.sh.
#   PGDATA_DIR  data directory (default /tmp/botgpt-pg)
#   PURGE=1     also delete the data directory
set -euo pipefail

PG_BIN=/usr/lib/postgresql/15/bin
PGDATA_DIR="${PGDATA_DIR:-/tmp/botgpt-pg}"

if [[ -f "${PGDATA_DIR}/postmaster.pid" ]]; then
    runuser -u postgres -- "${PG_BIN}/pg_ctl" -D "${PGDATA_DIR}" -m fast -w -t 60 stop >&2
else
    echo "[stop_postgres] no server running from ${PGDATA_DIR}" >&2
fi
if [[ "${PURGE:-0}" == "1" ]]; then
    rm -rf "${PGDATA_DIR}"
fi
