#!/usr/bin/env bash
# Validate the deployment files offline: the Dockerfile (hadolint), compose files and the
# GitHub Actions workflow against their JSON schemas (check-jsonschema's vendored copies),
# the Kubernetes manifests against the Kubernetes schemas of a pinned version
# (kubernetes-validate ships them), every YAML file with yamllint, the shell scripts (with
# ShellCheck), the Grafana dashboard as JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
K8S_VERSION=${BOTGPT_K8S_VERSION:-1.31.0}
yaml=(docker-compose.yml docker-compose.dev.yml .github/workflows/ci.yml .yamllint.yaml
    deploy/k8s/*.yaml deploy/prometheus/*.yml)

echo "[lint-deploy] hadolint Dockerfile" >&2
"$bin/hadolint" Dockerfile
echo "[lint-deploy] shellcheck scripts" >&2
"$bin/shellcheck" scripts/*.sh .ci/run
echo "[lint-deploy] yamllint" >&2
"$bin/yamllint" --strict -c .yamllint.yaml "${yaml[@]}"
echo "[lint-deploy] compose files against the compose-spec schema" >&2
"$bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml \
    docker-compose.dev.yml
echo "[lint-deploy] GitHub Actions workflow against its schema" >&2
"$bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
echo "[lint-deploy] Kubernetes manifests against Kubernetes $K8S_VERSION (strict)" >&2
"$bin/kubernetes-validate" --quiet --strict -k "$K8S_VERSION" deploy/k8s/*.yaml
echo "[lint-deploy] Grafana dashboard" >&2
for f in deploy/grafana/*.json; do
    "$bin/python" -m json.tool "$f" >/dev/null
done
echo "[lint-deploy] ok" >&2
