#!/usr/bin/env bash
# Start a throwaway PostgreSQL 15 + pgvector cluster for tests (idempotent).
#
#   PGDATA_DIR  data directory of the cluster      (default /tmp/botgpt-pg)
#   PGPORT      TCP port, bound to 127.0.0.1 only  (default 55432)
#   PGDATABASE  database to create                 (default botgpt_test)
#
# Safe to run repeatedly: it only builds pgvector if it is missing, only runs
# initdb on an empty directory, and only starts the server if nothing answers
# on the port. The last stdout line is the SQLAlchemy URL of the database.
# Meant for a root shell on Debian 12 (CI); progress goes to stderr.
set -euo pipefail

PG_VERSION=15
PG_BIN="/usr/lib/postgresql/${PG_VERSION}/bin"
PG_CONFIG="${PG_BIN}/pg_config"
PGDATA_DIR="${PGDATA_DIR:-/tmp/botgpt-pg}"
PGPORT="${PGPORT:-55432}"
PGDATABASE="${PGDATABASE:-botgpt_test}"
EXT_DIR="/usr/share/postgresql/${PG_VERSION}/extension"
TRIXIE_SRC_LIST=/etc/apt/sources.list.d/botgpt-trixie-src.list

export DEBIAN_FRONTEND=noninteractive

log() { echo "[start_postgres] $*" >&2; }

as_postgres() { runuser -u postgres -- "$@"; }

if [[ $(id -u) -ne 0 ]]; then
    log "must run as root (installs packages, runs the server as the postgres user)"
    exit 1
fi

apt_updated=0
apt_update_once() {
    if [[ $apt_updated -eq 0 ]]; then
        apt-get update -qq >&2
        apt_updated=1
    fi
}

apt_install() {
    apt_update_once
    apt-get install -y -qq --no-install-recommends "$@" >&2
}

# --- PostgreSQL 15 itself (a clean CI image may not have it) -----------------
if [[ ! -x "${PG_BIN}/initdb" ]]; then
    log "installing postgresql-${PG_VERSION}"
    # Do not let the package create and start its own 'main' cluster on 5432:
    # tests only use the throwaway cluster below.
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/botgpt-no-main.conf
    apt_install "postgresql-${PG_VERSION}" postgresql-client-${PG_VERSION}
fi

# --- pgvector, built from Debian trixie's source package ---------------------
# bookworm has no pgvector package; trixie's source builds cleanly against 15.
build_pgvector() {
    local t0 workdir
    t0=$(date +%s)
    log "pgvector missing: building it from Debian trixie sources"
    # The deb-src entry is only needed for this one download; the trap removes
    # it again whatever happens so later apt runs never see trixie. It is added
    # before the (single) apt-get update so one update serves both steps.
    trap 'rm -f "${TRIXIE_SRC_LIST}"' EXIT
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
        >"${TRIXIE_SRC_LIST}"
    apt_updated=0
    apt_update_once
    apt_install "postgresql-server-dev-${PG_VERSION}" build-essential dpkg-dev
    workdir=$(mktemp -d /tmp/pgvector-build.XXXXXX)
    # apt downloads as the unprivileged _apt user when it can write the target.
    if id _apt >/dev/null 2>&1; then chown _apt "${workdir}"; fi
    (
        cd "${workdir}"
        apt-get source -qq --download-only pgvector >&2
        dpkg-source -x --no-check ./pgvector_*.dsc src >&2
        cd src
        make -s -j"$(nproc)" with_llvm=no PG_CONFIG="${PG_CONFIG}" >&2
        make -s install with_llvm=no PG_CONFIG="${PG_CONFIG}" >&2
    )
    rm -rf "${workdir}"
    rm -f "${TRIXIE_SRC_LIST}"
    trap - EXIT
    log "pgvector built and installed in $(($(date +%s) - t0))s"
}

if [[ ! -f "${EXT_DIR}/vector.control" ]]; then
    build_pgvector
fi

psql_tcp() {
    "${PG_BIN}/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${PGPORT}" -U postgres "$@"
}

# --- the throwaway cluster ---------------------------------------------------
if "${PG_BIN}/pg_isready" -q -h 127.0.0.1 -p "${PGPORT}"; then
    log "a server already answers on 127.0.0.1:${PGPORT}; reusing it"
else
    if [[ ! -f "${PGDATA_DIR}/PG_VERSION" ]]; then
        log "initdb in ${PGDATA_DIR}"
        install -d -o postgres -g postgres -m 700 "${PGDATA_DIR}"
        as_postgres "${PG_BIN}/initdb" -D "${PGDATA_DIR}" -U postgres \
            --auth-local=trust --auth-host=reject --encoding=UTF8 --locale=C.UTF-8 --no-sync >&2
        # TCP: trust from 127.0.0.1 only, nothing else. The socket lives inside
        # the 0700 data dir, so only the postgres user can reach it.
        cat >"${PGDATA_DIR}/pg_hba.conf" <<HBA
local   all   all                  trust
host    all   all   127.0.0.1/32   trust
HBA
        # Durability is pointless for a throwaway test cluster; speed is not.
        cat >>"${PGDATA_DIR}/postgresql.conf" <<CONF

# --- botgpt test cluster ---
listen_addresses = '127.0.0.1'
port = ${PGPORT}
unix_socket_directories = '${PGDATA_DIR}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
CONF
        chown postgres:postgres "${PGDATA_DIR}/pg_hba.conf"
    fi
    log "starting PostgreSQL on 127.0.0.1:${PGPORT}"
    as_postgres "${PG_BIN}/pg_ctl" -D "${PGDATA_DIR}" -l "${PGDATA_DIR}/server.log" \
        -o "-p ${PGPORT}" -w -t 60 start >&2
fi

if [[ "$(psql_tcp -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '${PGDATABASE}'")" != "1" ]]; then
    psql_tcp -d postgres -c "CREATE DATABASE \"${PGDATABASE}\"" >&2
fi
psql_tcp -d "${PGDATABASE}" -c "CREATE EXTENSION IF NOT EXISTS vector" >&2

echo "postgresql+asyncpg://postgres@127.0.0.1:${PGPORT}/${PGDATABASE}"
