"""With Redis, a reply generating in one process can be followed and cancelled from another."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as redis
from fastapi import FastAPI

from botgpt.config import Settings
from botgpt.conversations.records import Turn, TurnRequest
from botgpt.llm.fake import FakeProvider, FakeReply
from botgpt.main import create_app

REDIS_URL = os.environ.get("BOTGPT_TEST_REDIS_URL", "")
pytestmark = pytest.mark.skipif(not REDIS_URL, reason="BOTGPT_TEST_REDIS_URL is not set")
REPLY = "".join(f"w{n:02d} " for n in range(20))  # 20 chunks of 4 characters


@dataclass
class Process:
    app: FastAPI
    fake: FakeProvider
    client: httpx.AsyncClient


@pytest.fixture
async def processes(tmp_path: Path) -> AsyncIterator[tuple[Process, Process]]:
    """Two app instances on one database and one Redis, as two server processes would be."""
    url = REDIS_URL.rsplit("/", 1)[0] + "/9"
    await redis.Redis.from_url(url).flushdb()
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "redis_url": url,
        "llm_provider": "fake",
        "llm_titles": False,
        "rate_limit_auth": "",
    }
    async with AsyncExitStack() as stack:
        made = []
        for _ in range(2):
            fake = FakeProvider()
            app = create_app(Settings(_env_file=None, **values), provider=fake)  # type: ignore[call-arg]
            await stack.enter_async_context(app.router.lifespan_context(app))
            fanout = app.state.container.streams.fanout
            await asyncio.wait_for(fanout.cancels.ready.wait(), 5)
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(transport=transport, base_url="http://t")
            made.append(Process(app, fake, await stack.enter_async_context(client)))
        yield made[0], made[1]


async def start_slow_turn(process: Process, chunk_delay: float) -> tuple[Turn, dict[str, str]]:
    """Register a user through the API and start a slowly streamed reply in `process`."""
    account = {"email": f"u{os.urandom(4).hex()}@example.com", "password": "long enough pw"}
    user = (await process.client.post("/api/v1/auth/register", json=account)).json()
    token = (await process.client.post("/api/v1/auth/login", json=account)).json()
    process.fake.enqueue(FakeReply(REPLY, chunk_size=4, chunk_delay=chunk_delay))
    services = process.app.state.container
    turn = await services.chat.prepare(TurnRequest(user["id"], "hi"))
    services.streams.start(turn)
    return turn, {"Authorization": f"Bearer {token['access_token']}"}


def parse(body: str) -> list[tuple[int, str, dict[str, Any]]]:
    events = []
    for frame in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
        if "event" in fields:
            events.append((int(fields["id"]), fields["event"], orjson.loads(fields["data"])))
    return events


async def test_another_process_follows_the_reply_from_the_last_event_it_saw(
    processes: tuple[Process, Process],
) -> None:
    first, second = processes
    turn, headers = await start_slow_turn(first, chunk_delay=0.05)
    url = f"/api/v1/conversations/{turn.conversation_id}/messages/{turn.assistant.id}/stream"
    r = await second.client.get(url, headers={**headers, "Last-Event-ID": "3"})
    assert r.status_code == 200
    events = parse(r.text)
    ids = [event_id for event_id, _, _ in events]
    assert ids[0] == 4 and ids == sorted(set(ids))  # resumes after 3, in order, no repeats
    assert events[-1][1] == "done"
    deltas = "".join(data["text"] for _, name, data in events if name == "delta")
    assert REPLY.endswith(deltas) and len(deltas) == len(REPLY) - 4 * 2  # deltas 1-2 skipped


async def test_a_cancel_sent_to_another_process_stops_the_reply(
    processes: tuple[Process, Process],
) -> None:
    first, second = processes
    turn, headers = await start_slow_turn(first, chunk_delay=0.1)  # 2 s in all
    await asyncio.sleep(0.35)
    url = f"/api/v1/conversations/{turn.conversation_id}/messages/{turn.assistant.id}/cancel"
    r = await second.client.post(url, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert first.app.state.container.streams.get(turn.assistant.id) is None
    r = await second.client.get(f"/api/v1/conversations/{turn.conversation_id}", headers=headers)
    reply = r.json()["messages"][-1]
    assert reply["status"] == "cancelled"
    assert reply["content"] and REPLY.startswith(reply["content"]) and reply["content"] != REPLY
