#!/usr/bin/env bash
# Container step of the test command: build the Dockerfile and check that the image answers.
#
# Docker Hub is out of reach here and no Docker engine runs, so the base image is a minimal
# Debian bookworm made with debootstrap (Python 3.11 from Debian) and imported into podman;
# `podman build --isolation chroot` builds the Dockerfile on it, and `buildah run --isolation
# chroot` runs `botgpt serve` from the image on the host's loopback (podman run cannot start
# containers in this sandbox). The smoke test waits for /ready, creates a conversation that the
# embedded model answers, and stops the server.
#
# Where the machine cannot do this (no podman and no way to install it, build refused before
# anything was built), it prints "[container] skipped: <why>" and exits 0. Once the image is
# built, any failure fails the step. The debootstrap root and the image layers are cached, so
# reruns take seconds.
#
#   BOTGPT_CONTAINER_SMOKE=0          skip the step
#   BOTGPT_CONTAINER_CACHE=DIR        where the base root is kept (/var/cache/botgpt)
#   BOTGPT_DEBIAN_MIRROR=URL          the Debian mirror (default: the machine's apt source)
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
log() { echo "[container] $*" >&2; }
skip() {
    log "skipped: $*"
    exit 0
}

[[ ${BOTGPT_CONTAINER_SMOKE:-1} == 0 ]] && skip "BOTGPT_CONTAINER_SMOKE=0"

CACHE=${BOTGPT_CONTAINER_CACHE:-/var/cache/botgpt}
ROOT=$CACHE/bookworm-minbase
BASE_IMAGE=localhost/bookworm-base
IMAGE=localhost/botgpt:smoke

# --- tools ------------------------------------------------------------------------------
need=()
for tool in podman buildah debootstrap curl; do
    command -v "$tool" >/dev/null || need+=("$tool")
done
if ((${#need[@]})); then
    if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
        skip "missing ${need[*]} and cannot install them (needs root and apt-get)"
    fi
    log "installing ${need[*]}"
    if ! { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends podman buildah debootstrap curl \
        uidmap fuse-overlayfs containernetworking-plugins >/dev/null; }; then
        skip "apt-get could not install ${need[*]}"
    fi
fi
if ! podman info >/dev/null 2>&1; then
    skip "podman cannot run here: $(podman info 2>&1 | tail -n 1)"
fi

# --- base image: debootstrap bookworm minbase + Python 3.11 + the host's CA bundle --------
mirror=${BOTGPT_DEBIAN_MIRROR:-}
if [[ -z $mirror ]]; then
    mirror=$(sed -n 's/^URIs: *\([^ ]*debian\)\/\?$/\1/p' /etc/apt/sources.list.d/*.sources \
        2>/dev/null | head -n 1)
    mirror=${mirror:-http://deb.debian.org/debian}
fi
mkdir -p "$CACHE"
# One run at a time on a machine (they share the base, the image tag and the layer cache).
exec 9>"$CACHE/.lock"
flock 9
# Working containers of runs that were killed before their cleanup.
buildah containers --format '{{.ContainerName}}' 2>/dev/null | grep '^botgpt-smoke-' |
    xargs -r buildah rm >/dev/null 2>&1 || true
if [[ ! -f $ROOT/.botgpt-complete ]]; then
    log "debootstrap bookworm (minbase + python3) from $mirror into $ROOT"
    rm -rf "$ROOT"
    if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$ROOT" "$mirror" >"$CACHE/debootstrap.log" 2>&1; then
        tail -n 5 "$CACHE/debootstrap.log" >&2
        skip "debootstrap failed (log: $CACHE/debootstrap.log)"
    fi
    rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*
    touch "$ROOT/.botgpt-complete"
fi
# Package downloads may pass a TLS re-signing proxy: the base trusts what the host trusts.
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
if [[ -d /usr/local/share/ca-certificates ]]; then
    mkdir -p "$ROOT/usr/local/share/ca-certificates"
    cp -a /usr/local/share/ca-certificates/. "$ROOT/usr/local/share/ca-certificates/"
fi
base_id=$( (cat "$ROOT/.botgpt-complete" /etc/ssl/certs/ca-certificates.crt) | sha256sum | cut -c1-16)
if [[ $(podman image inspect --format '{{index .Labels "botgpt.base"}}' "$BASE_IMAGE" \
    2>/dev/null) != "$base_id" ]]; then
    log "importing $ROOT as $BASE_IMAGE"
    tar -C "$ROOT" --exclude=./.botgpt-complete -c . | podman import --quiet \
        --change "LABEL botgpt.base=$base_id" \
        --change "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" \
        --change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt" \
        --change "CMD [\"/bin/bash\"]" - "$BASE_IMAGE" >/dev/null
fi

# --- build ------------------------------------------------------------------------------
build_args=(--build-arg "BASE=$BASE_IMAGE")
for var in PIP_INDEX_URL UV_DEFAULT_INDEX UV_INDEX_URL; do
    [[ -n ${!var:-} ]] && build_args+=(--build-arg "$var=${!var}")
done
t0=$SECONDS
log "podman build --isolation chroot --format docker ${build_args[*]} -t $IMAGE ."
# Docker format: the OCI image format has no HEALTHCHECK.
if ! podman build --isolation chroot --format docker --layers "${build_args[@]}" -t "$IMAGE" . \
    >"$CACHE/build.log" 2>&1; then
    tail -n 30 "$CACHE/build.log" >&2
    if grep -q -E "operation not permitted|permission denied|not supported" "$CACHE/build.log" &&
        ! podman image exists "$IMAGE"; then
        skip "podman build refused by this machine (log: $CACHE/build.log)"
    fi
    log "FAILED: podman build (log: $CACHE/build.log)"
    exit 1
fi
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
log "built $IMAGE in $((SECONDS - t0)) s, $((size / 1000000)) MB"
# Intermediate images of the stages are the layer cache of the next run: only old ones go.
podman image prune -f --filter until=168h >/dev/null 2>&1 || true

# --- smoke test: serve from the image, wait for /ready, get an answer ---------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ctr=$(buildah from --quiet --name "botgpt-smoke-$$" "$IMAGE")
out=$(mktemp -d)
server_pid=""
cleanup() {
    if [[ -n $server_pid ]]; then
        kill -TERM -- "-$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL -- "-$server_pid" 2>/dev/null || true
    fi
    buildah rm "$ctr" >/dev/null 2>&1 || true
    rm -rf "$out"
}
trap cleanup EXIT
fail() {
    log "FAILED: $*"
    log "server output:"
    tail -n 40 "$out/server.log" >&2 || true
    exit 1
}

# The image's defaults (BOTGPT_HOST=0.0.0.0, /data) apply; only the port is moved to a free
# one on loopback, since chroot isolation shares the host's network.
setsid buildah run --isolation chroot --env "BOTGPT_HOST=127.0.0.1" --env "BOTGPT_PORT=$port" \
    --env "BOTGPT_LLM_MAX_TOKENS=24" --env "BOTGPT_LLM_TITLES=false" \
    "$ctr" -- botgpt serve >"$out/server.log" 2>&1 &
server_pid=$!
url=http://127.0.0.1:$port
for _ in $(seq 240); do
    kill -0 "$server_pid" 2>/dev/null || fail "the server exited"
    curl -fsS -o /dev/null "$url/ready" 2>/dev/null && break
    sleep 0.5
done
curl -fsS "$url/ready" >/dev/null || fail "/ready did not answer within 120 s"
key=$(sed -n 's/.*Admin API key (shown once, keep it safe): *\([^ ]*\).*/\1/p' \
    "$out/server.log" | head -n 1)
[[ -n $key ]] || fail "no admin API key in the server's output"
status=$(curl -sS -o "$out/reply.json" -w '%{http_code}' "$url/api/v1/conversations" \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d '{"first_message": "Say hello in one short sentence.", "mode": "open"}' --max-time 180) ||
    fail "POST /api/v1/conversations did not answer"
[[ $status == 201 ]] || fail "POST /api/v1/conversations answered $status: $(cat "$out/reply.json")"
answer=$(python3 - "$out/reply.json" <<'PY'
import json, sys

body = json.load(open(sys.argv[1]))
reply = body.get("assistant_message") or body.get("reply") or {}
content = reply.get("content", "") if isinstance(reply, dict) else ""
if reply.get("status") not in (None, "complete", "completed") or not content.strip():
    sys.exit(f"no answer in {json.dumps(body)[:400]}")
print(content.strip().replace("\n", " ")[:120])
PY
) || fail "the model did not answer"
log "the image answered on $url: \"$answer\""
# The image's own HEALTHCHECK command, run in the container against the server.
mapfile -t health < <(podman image inspect --format '{{range .Config.Healthcheck.Test}}{{println .}}{{end}}' \
    "$IMAGE" | sed '/^$/d')
[[ ${health[0]:-} == CMD ]] || fail "the image has no HEALTHCHECK command"
buildah run --isolation chroot --env "BOTGPT_PORT=$port" "$ctr" -- "${health[@]:1}" ||
    fail "the image's HEALTHCHECK failed"
[[ $(buildah run --isolation chroot "$ctr" -- id -u) == 10001 ]] || fail "the image runs as root"
log "HEALTHCHECK passes; runs as uid 10001"
log "passed in $((SECONDS - started)) s (image $((size / 1000000)) MB)"
