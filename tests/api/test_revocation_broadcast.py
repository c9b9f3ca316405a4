"""With Redis, a revoked API key stops working in every process at once, not after 30 s."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
import redis.asyncio as redis

from botgpt.config import Settings
from botgpt.main import create_app

REDIS_URL = os.environ.get("BOTGPT_TEST_REDIS_URL", "")
pytestmark = pytest.mark.skipif(not REDIS_URL, reason="BOTGPT_TEST_REDIS_URL is not set")


@pytest.fixture
async def two_processes(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    """Two app instances on one database and one Redis, as two server processes would be."""
    url = REDIS_URL.rsplit("/", 1)[0] + "/8"
    await redis.Redis.from_url(url).flushdb()
    settings = {
        "data_dir": tmp_path,
        "redis_url": url,
        "llm_provider": "fake",
        "rate_limit_auth": "",
        "api_key_cache_seconds": 600.0,  # a stale cache would outlive the test by far
    }
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(2):
            app = create_app(Settings(_env_file=None, **settings))  # type: ignore[call-arg, arg-type]
            await stack.enter_async_context(app.router.lifespan_context(app))
            await asyncio.wait_for(app.state.container.auth.revocations.ready.wait(), 5)
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(transport=transport, base_url="http://t")
            clients.append(await stack.enter_async_context(client))
        yield tuple(clients)


async def test_a_key_revoked_in_one_process_fails_in_the_other_at_once(
    two_processes: tuple[httpx.AsyncClient, ...],
) -> None:
    first, second = two_processes
    account = {"email": "r@example.com", "password": "long enough pw"}
    assert (await first.post("/api/v1/auth/register", json=account)).status_code == 201
    token = (await first.post("/api/v1/auth/login", json=account)).json()["access_token"]
    r = await first.post(
        "/api/v1/api-keys", json={"name": "app"}, headers={"Authorization": f"Bearer {token}"}
    )
    key_id, key = r.json()["id"], r.json()["key"]
    with_key = {"Authorization": f"Bearer {key}"}
    assert (await second.get("/api/v1/users/me", headers=with_key)).status_code == 200  # cached

    r = await first.delete(
        f"/api/v1/api-keys/{key_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 204
    deadline = time.monotonic() + 2.0
    while (await second.get("/api/v1/users/me", headers=with_key)).status_code == 200:
        assert time.monotonic() < deadline, "the other process still accepts the revoked key"
        await asyncio.sleep(0.02)
