"""No request holds a database connection while it waits on the model (issue 8, item 1)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from botgpt.llm.fake import FakeProvider
from tests.api.test_streaming import SSEReader, live  # noqa: F401  (the live server fixture)
from tests.conftest import AppCtx, AuthedUser, UserFactory

STREAMS = 50


async def _stream(client: httpx.AsyncClient, owner: AuthedUser) -> list[dict[str, Any]]:
    async with client.stream(
        "POST",
        "/api/v1/conversations?stream=true",
        json={"first_message": "Tell me something slowly"},
        headers=owner.headers,
        timeout=60,
    ) as r:
        assert r.status_code == 201
        return await SSEReader(r).read()


async def _wait_for(predicate: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


async def test_login_token_streams_hold_no_connection(
    ctx: AppCtx,
    live: httpx.AsyncClient,  # noqa: F811
    users: UserFactory,
    fake: FakeProvider,
) -> None:
    """50 slow streams signed in with login tokens; another user's requests keep answering."""
    streamers = [await users.create() for _ in range(5)]
    other = await users.create()
    pool = ctx.app.state.container.engine.pool
    fake.hold = asyncio.Event()  # every reply waits on the model until released
    tasks: list[asyncio.Task[list[dict[str, Any]]]] = []
    try:
        tasks = [
            asyncio.create_task(_stream(live, streamers[i % len(streamers)]))
            for i in range(STREAMS)
        ]
        # Every stream got as far as asking the model (so it is waiting on it now).
        assert await _wait_for(lambda: len(fake.requests) >= STREAMS, 30), len(fake.requests)
        assert pool.checkedout() == 0
        for _ in range(5):
            # Well under the pool's 30 s wait: a starved pool would time these out.
            r = await live.get("/api/v1/conversations", headers=other.headers, timeout=5)
            assert r.status_code == 200, r.text
            r = await live.get("/api/v1/users/me", headers=other.headers, timeout=5)
            assert r.status_code == 200, r.text
            r = await live.get("/ready", timeout=5)
            assert r.status_code == 200, r.text
        assert not any(t.done() for t in tasks)  # the streams were all open meanwhile
    finally:
        fake.hold.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        fake.hold = None
    for frames in results:
        assert not isinstance(frames, BaseException), frames
        assert frames[0]["event"] == "start"
        assert frames[-1]["event"] == "done"


async def test_non_streaming_turn_holds_no_connection(
    ctx: AppCtx, client: httpx.AsyncClient, user: AuthedUser, fake: FakeProvider
) -> None:
    """A JSON turn signed in with a login token gives its connection back while the model works."""
    pool = ctx.app.state.container.engine.pool
    fake.hold = asyncio.Event()
    try:
        task = asyncio.create_task(
            client.post(
                "/api/v1/conversations", json={"first_message": "hello"}, headers=user.headers
            )
        )
        assert await _wait_for(lambda: len(fake.requests) >= 1, 10)
        assert pool.checkedout() == 0
    finally:
        fake.hold.set()
        r = await task
        fake.hold = None
    assert r.status_code == 201, r.text
    assert r.json()["assistant_message"]["status"] == "complete"
