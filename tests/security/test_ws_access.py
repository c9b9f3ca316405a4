"""WebSocket access: every frame is checked like the REST routes; seed 004's first-frame auth."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
import websockets
from websockets.asyncio.client import ClientConnection

from botgpt.conversations import ws_router
from botgpt.conversations.fanout import TurnFanout
from botgpt.conversations.streams import StreamHub
from botgpt.llm.fake import FakeProvider, FakeReply
from tests.conftest import AppCtx, AuthedUser, UserFactory

SLOW = FakeReply(text="word " * 60, chunk_size=5, chunk_delay=0.02)  # about 1.2 s
REDIS_URL = os.environ.get("BOTGPT_TEST_REDIS_URL", "")


async def frames_until(ws: ClientConnection, *types: str, limit: int = 500) -> list[dict[str, Any]]:
    """Frames received up to and including the first of one of `types`."""
    got: list[dict[str, Any]] = []
    for _ in range(limit):
        got.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        if got[-1]["type"] in types:
            return got
    raise AssertionError(f"no {types} frame in {got}")


async def start_slow_reply(ws: ClientConnection, fake: FakeProvider) -> dict[str, Any]:
    """Send a message whose reply takes a while; the `start` frame's data."""
    fake.enqueue(SLOW)
    await ws.send(json.dumps({"type": "message", "content": "tell me a long story"}))
    start = await frames_until(ws, "start")
    data: dict[str, Any] = start[-1]["data"]
    return data


async def test_cancel_frame_for_another_users_reply_is_not_found(
    live: str, users: UserFactory, fake: FakeProvider
) -> None:
    victim, attacker = await users.create(), await users.create()
    url = f"{live}/api/v1/chat/ws"
    async with (
        websockets.connect(f"{url}?token={victim.access_token}") as mine,
        websockets.connect(f"{url}?token={attacker.access_token}") as theirs,
    ):
        started = await start_slow_reply(mine, fake)
        mid = started["assistant_message_id"]
        await theirs.send(json.dumps({"type": "cancel", "message_id": mid}))
        refused = json.loads(await asyncio.wait_for(theirs.recv(), 10))
        assert refused["type"] == "error" and refused["data"]["code"] == "not_found"
        # Naming the victim's conversation does not help either.
        cid = started["conversation_id"]
        await theirs.send(json.dumps({"type": "cancel", "message_id": mid, "conversation_id": cid}))
        refused = json.loads(await asyncio.wait_for(theirs.recv(), 10))
        assert refused["data"]["code"] == "not_found"
        # The victim's reply runs to its end.
        events = await frames_until(mine, "done", "cancelled", "error")
        assert events[-1]["type"] == "done"
        # The owner may cancel their own reply by message id alone.
        again = await start_slow_reply(mine, fake)
        await mine.send(json.dumps({"type": "cancel", "message_id": again["assistant_message_id"]}))
        events = await frames_until(mine, "done", "cancelled", "error")
        assert events[-1]["type"] == "cancelled"


async def test_message_frame_on_another_users_conversation_is_not_found(
    live: str, users: UserFactory, client: httpx.AsyncClient
) -> None:
    victim, attacker = await users.create(), await users.create()
    r = await client.post(
        "/api/v1/conversations", json={"first_message": "secret"}, headers=victim.headers
    )
    cid = r.json()["conversation_id"]
    async with websockets.connect(f"{live}/api/v1/chat/ws?token={attacker.access_token}") as ws:
        await ws.send(json.dumps({"type": "message", "conversation_id": cid, "content": "hi"}))
        err = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert err["type"] == "error" and err["data"]["code"] == "not_found"
        # Acting for another user is a service key's privilege only.
        frame = {"type": "message", "content": "hi", "user_id": victim.id}
        await ws.send(json.dumps(frame))
        err = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert err["data"]["code"] == "forbidden"
    r = await client.get(f"/api/v1/conversations/{cid}", headers=victim.headers)
    assert r.json()["messages"][0]["content"] == "secret"
    assert len(r.json()["messages"]) == 2


async def test_service_key_cancels_any_reply_over_the_websocket(
    live: str, user: AuthedUser, admin_key: str, fake: FakeProvider
) -> None:
    url = f"{live}/api/v1/chat/ws"
    async with (
        websockets.connect(f"{url}?token={user.access_token}") as mine,
        websockets.connect(f"{url}?token={admin_key}") as service,
    ):
        started = await start_slow_reply(mine, fake)
        mid = started["assistant_message_id"]
        # A user_id naming someone else than the owner: not found.
        await service.send(json.dumps({"type": "cancel", "message_id": mid, "user_id": "x-1"}))
        err = json.loads(await asyncio.wait_for(service.recv(), 10))
        assert err["data"]["code"] == "not_found"
        await service.send(json.dumps({"type": "cancel", "message_id": mid}))
        events = await frames_until(mine, "done", "cancelled", "error")
        assert events[-1]["type"] == "cancelled"


@pytest.fixture
async def shared_hub(ctx: AppCtx) -> AsyncIterator[StreamHub]:
    """The app's stream hub with its turns shared through Redis, as with several processes."""
    if not REDIS_URL:
        pytest.skip("BOTGPT_TEST_REDIS_URL is not set")
    await redis.Redis.from_url(REDIS_URL).flushdb()
    hub: StreamHub = ctx.app.state.container.streams
    fanout = TurnFanout(REDIS_URL, hub.cancel)
    await fanout.start()
    await asyncio.wait_for(fanout.cancels.ready.wait(), 5)
    hub.fanout = fanout
    yield hub
    hub.fanout = None
    await fanout.stop()


async def test_rest_cancel_of_another_users_reply_is_not_broadcast(
    shared_hub: StreamHub,
    live: str,
    users: UserFactory,
    client: httpx.AsyncClient,
    fake: FakeProvider,
) -> None:
    """With Redis a cancel goes to every process: ownership is checked before it is sent."""
    victim, attacker = await users.create(), await users.create()
    r = await client.post(
        "/api/v1/conversations", json={"first_message": "mine"}, headers=attacker.headers
    )
    own_cid = r.json()["conversation_id"]
    async with websockets.connect(f"{live}/api/v1/chat/ws?token={victim.access_token}") as ws:
        started = await start_slow_reply(ws, fake)
        mid = started["assistant_message_id"]
        for cid in (own_cid, started["conversation_id"]):
            r = await client.post(
                f"/api/v1/conversations/{cid}/messages/{mid}/cancel", headers=attacker.headers
            )
            assert r.status_code == 404, r.text
        events = await frames_until(ws, "done", "cancelled", "error")
        assert events[-1]["type"] == "done"


# -- seed 004: WS /api/v1/chat/ws/{user_id} with the token in the first frame ------------------


@pytest.fixture
def quick_auth(monkeypatch: pytest.MonkeyPatch) -> float:
    """A short first-frame deadline so the timeout test is fast."""
    monkeypatch.setattr(ws_router, "AUTH_TIMEOUT_SECONDS", 0.3)
    return 0.3


async def closed_with(ws: ClientConnection) -> int | None:
    """The close code the server ends the connection with."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        for _ in range(10):
            await asyncio.wait_for(ws.recv(), 10)
    return closed.value.rcvd.code if closed.value.rcvd else None


async def test_first_frame_auth_then_chat(live: str, user: AuthedUser, fake: FakeProvider) -> None:
    fake.enqueue("Hello from the seed client")
    async with websockets.connect(f"{live}/api/v1/chat/ws/{user.id}") as ws:
        await ws.send(json.dumps({"type": "auth", "token": user.access_token}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert ack == {"type": "authenticated", "user_id": user.id}
        await ws.send(json.dumps({"type": "message", "content": "hi", "language": "en"}))
        frames = await frames_until(ws, "response")
        assert frames[-1]["content"] == "Hello from the seed client"
        assert frames[-1]["conversation_id"] and frames[-1]["message_id"]


async def test_first_frame_auth_with_an_api_key(
    live: str, user: AuthedUser, client: httpx.AsyncClient
) -> None:
    r = await client.post("/api/v1/api-keys", json={"name": "ws"}, headers=user.headers)
    async with websockets.connect(f"{live}/api/v1/chat/ws/{user.id}") as ws:
        await ws.send(json.dumps({"type": "auth", "token": r.json()["key"]}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert ack["type"] == "authenticated"


async def test_no_auth_frame_in_time_closes_4401(
    live: str, user: AuthedUser, quick_auth: float
) -> None:
    async with websockets.connect(f"{live}/api/v1/chat/ws/{user.id}") as ws:
        started = asyncio.get_running_loop().time()
        assert await closed_with(ws) == 4401
        assert asyncio.get_running_loop().time() - started < quick_auth + 2


@pytest.mark.parametrize(
    "first",
    [
        {"type": "message", "content": "hi"},
        {"type": "auth"},
        {"type": "auth", "token": "not-a-token"},
        "not json",
    ],
)
async def test_a_first_frame_that_does_not_authenticate_closes_4401(
    live: str, user: AuthedUser, first: Any
) -> None:
    async with websockets.connect(f"{live}/api/v1/chat/ws/{user.id}") as ws:
        await ws.send(first if isinstance(first, str) else json.dumps(first))
        assert await closed_with(ws) == 4401


async def test_another_users_path_closes_4403(live: str, users: UserFactory) -> None:
    owner, other = await users.create(), await users.create()
    async with websockets.connect(f"{live}/api/v1/chat/ws/{owner.id}") as ws:
        await ws.send(json.dumps({"type": "auth", "token": other.access_token}))
        assert await closed_with(ws) == 4403
    # The same with the token in the URL: refused at the handshake.
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(
            f"{live}/api/v1/chat/ws/{owner.id}?token={other.access_token}"
        ):
            pass


async def test_service_key_connects_for_its_user(
    live: str, user: AuthedUser, admin_key: str, fake: FakeProvider, client: httpx.AsyncClient
) -> None:
    fake.enqueue("For the user")
    async with websockets.connect(f"{live}/api/v1/chat/ws/{user.id}") as ws:
        await ws.send(json.dumps({"type": "auth", "token": admin_key}))
        assert json.loads(await ws.recv())["type"] == "authenticated"
        await ws.send(json.dumps({"type": "message", "content": "hi"}))
        frames = await frames_until(ws, "response")
    r = await client.get(
        f"/api/v1/conversations/{frames[-1]['conversation_id']}", headers=user.headers
    )
    assert r.status_code == 200  # the conversation is the path user's


async def test_url_tokens_are_kept_out_of_the_logs(
    live: str, user: AuthedUser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with websockets.connect(f"{live}/api/v1/chat/ws?token={user.access_token}") as ws:
        await ws.send(json.dumps({"type": "cancel", "message_id": "none"}))
        await ws.recv()
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(f"{live}/api/v1/chat/ws?token=bad-{user.access_token}"):
            pass
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "token=[redacted]" in logged  # the server did log the connections
    assert user.access_token not in logged
    assert user.access_token not in caplog.text
