"""`botgpt worker`: a separate process ingests what the API enqueued in Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from botgpt.config import Settings
from botgpt.main import create_app

REDIS_URL = os.environ.get("BOTGPT_TEST_REDIS_URL", "")
pytestmark = pytest.mark.skipif(not REDIS_URL, reason="BOTGPT_TEST_REDIS_URL is not set")
TEXT = b"The warranty covers repairs for two years after purchase.\n\nReturns take 30 days."


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Settings shared by the worker process and the in-test API: own data dir, own Redis db."""
    url = REDIS_URL.rsplit("/", 1)[0] + "/7"  # a database of its own: the default stream name
    redis.Redis.from_url(url).flushdb()
    yield {
        "BOTGPT_DATA_DIR": str(tmp_path),
        "BOTGPT_REDIS_URL": url,
        "BOTGPT_LLM_PROVIDER": "fake",
        "BOTGPT_JOBS_IN_SERVER": "false",
        "BOTGPT_RATE_LIMIT_AUTH": "",
        "BOTGPT_LOG_LEVEL": "WARNING",
    }
    redis.Redis.from_url(url).flushdb()


def start_worker(env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "botgpt.cli", "worker"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        if "worker running" in line:
            return proc
        assert time.monotonic() < deadline
    raise AssertionError(f"the worker exited with {proc.wait()}")


def test_the_worker_ingests_what_the_api_enqueued(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    worker = start_worker(env)
    try:
        body = asyncio.run(upload_and_wait())
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=20)
    assert body["status"] == "ready", body
    assert body["chunk_count"] >= 1
    assert code == 0


async def upload_and_wait() -> dict[str, object]:
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            account = {"email": "w@example.com", "password": "long enough pw"}
            assert (await client.post("/api/v1/auth/register", json=account)).status_code == 201
            token = (await client.post("/api/v1/auth/login", json=account)).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            ready = (await client.get("/ready")).json()
            assert ready["checks"]["redis"] == "ok"
            r = await client.post(
                "/api/v1/documents",
                files={"file": ("warranty.txt", TEXT, "text/plain")},
                headers=headers,
            )
            assert r.status_code in (200, 201, 202), r.text
            url = f"/api/v1/documents/{r.json()['id']}"
            deadline = time.monotonic() + 60
            while True:
                body: dict[str, object] = (await client.get(url, headers=headers)).json()
                if body["status"] in ("ready", "failed") or time.monotonic() > deadline:
                    return body
                await asyncio.sleep(0.1)


def test_the_worker_needs_redis(tmp_path: Path) -> None:
    env = {**os.environ, "BOTGPT_DATA_DIR": str(tmp_path), "BOTGPT_REDIS_URL": ""}
    done = subprocess.run(
        [sys.executable, "-m", "botgpt.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "BOTGPT_REDIS_URL" in done.stderr


def test_a_document_left_half_done_by_a_dead_worker_is_finished(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert asyncio.run(take_over()) == "ready"


async def take_over() -> str:
    from sqlalchemy import text

    from botgpt.db import make_engine, make_sessionmaker
    from botgpt.documents.service import build_document_services
    from botgpt.jobs.redis_queue import RedisJobQueue

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    app = create_app(settings)  # enqueues only (BOTGPT_JOBS_IN_SERVER=false)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            account = {"email": "d@example.com", "password": "long enough pw"}
            await client.post("/api/v1/auth/register", json=account)
            token = (await client.post("/api/v1/auth/login", json=account)).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            r = await client.post(
                "/api/v1/documents",
                files={"file": ("warranty.txt", TEXT, "text/plain")},
                headers=headers,
            )
            document_id = r.json()["id"]
        # A worker took the job, got half-way and died: the entry stays pending.
        jobs: RedisJobQueue = app.state.container.docs.jobs
        assert await jobs.client.xreadgroup(jobs.group, "dead", {jobs.stream: ">"}, count=1)
        async with app.state.container.engine.begin() as conn:
            await conn.execute(
                text("UPDATE documents SET status = 'embedding' WHERE id = :id"),
                {"id": document_id},
            )

    engine = make_engine(settings.effective_database_url)
    survivor = RedisJobQueue(settings.redis_url, lease_seconds=0.3, block_seconds=0.1)
    services = build_document_services(settings, engine, make_sessionmaker(engine), survivor)
    try:
        await survivor.start()
        await asyncio.wait_for(survivor.join(), 60)
        async with engine.connect() as conn:
            status = (
                await conn.execute(
                    text("SELECT status FROM documents WHERE id = :id"), {"id": document_id}
                )
            ).scalar()
    finally:
        await services.close()
        await engine.dispose()
    return str(status)
