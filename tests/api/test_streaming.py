"""Streaming turns over SSE against a real server: events, disconnect, re-attach, cancel."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from botgpt.conversations.streams import StreamHub
from botgpt.conversations.turn import ChatService
from botgpt.llm.fake import FakeProvider, FakeReply
from tests.conftest import AppCtx, AuthedUser, ConversationFactory, serve_app

LONG = "The quick brown fox jumps over the lazy dog. " * 4


@pytest.fixture
async def live(ctx: AppCtx) -> AsyncIterator[httpx.AsyncClient]:
    """A real uvicorn server on 127.0.0.1 serving the test app, and a client for it."""
    async with (
        serve_app(ctx.app) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
    ):
        yield client


def parse_frames(raw: str) -> list[dict[str, Any]]:
    """SSE frames as dicts with id, event and parsed data."""
    frames = []
    for block in raw.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            key, _, value = line.partition(": ")
            fields[key] = value
        if fields:
            fields["data"] = json.loads(fields["data"])
            fields["id"] = int(fields["id"])
            frames.append(fields)
    return frames


class SSEReader:
    """Reads SSE frames from one streaming response, across several calls."""

    def __init__(self, response: httpx.Response) -> None:
        self.chunks = response.aiter_text()
        self.buffer = ""

    async def read(self, stop_after: int | None = None) -> list[dict[str, Any]]:
        """Frames until the stream ends, or until `stop_after` frames were read."""
        frames: list[dict[str, Any]] = []
        while True:
            while "\n\n" in self.buffer:
                block, self.buffer = self.buffer.split("\n\n", 1)
                frames += parse_frames(block + "\n\n")
                if stop_after is not None and len(frames) >= stop_after:
                    return frames
            try:
                self.buffer += await anext(self.chunks)
            except StopAsyncIteration:
                return frames


async def read_events(
    response: httpx.Response, stop_after: int | None = None
) -> list[dict[str, Any]]:
    """Read frames from a streaming response, optionally stopping early."""
    return await SSEReader(response).read(stop_after)


async def wait_status(
    client: httpx.AsyncClient, user: AuthedUser, cid: str, seq: int, status: str
) -> dict[str, Any]:
    """Poll a conversation until message `seq` has `status`."""
    for _ in range(200):
        r = await client.get(f"/api/v1/conversations/{cid}", headers=user.headers)
        msg = next(m for m in r.json()["messages"] if m["seq"] == seq)
        if msg["status"] == status:
            return msg
        await asyncio.sleep(0.02)
    raise AssertionError(f"message {seq} never reached {status}: {msg}")


def hub_of(ctx: AppCtx) -> StreamHub:
    hub: StreamHub = ctx.app.state.container.streams
    return hub


async def test_sse_events_and_headers(
    live: httpx.AsyncClient, user: AuthedUser, fake: FakeProvider
) -> None:
    fake.enqueue(LONG)
    async with live.stream(
        "POST",
        "/api/v1/conversations?stream=true",
        json={"first_message": "Tell me"},
        headers=user.headers,
    ) as r:
        assert r.status_code == 201
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"].startswith("no-cache")
        assert r.headers["x-accel-buffering"] == "no"
        frames = await read_events(r)
    kinds = [f["event"] for f in frames]
    assert kinds[0] == "start" and kinds[-2:] == ["usage", "done"]
    assert [f["id"] for f in frames] == list(range(1, len(frames) + 1))
    text = "".join(f["data"]["text"] for f in frames if f["event"] == "delta")
    assert text == LONG
    done = frames[-1]["data"]["assistant_message"]
    assert done["content"] == LONG and done["status"] == "complete"
    cid = frames[0]["data"]["conversation_id"]
    msg = await wait_status(live, user, cid, 2, "complete")
    assert msg["content"] == LONG


async def test_disconnect_stores_partial_as_cancelled(
    live: httpx.AsyncClient,
    user: AuthedUser,
    conversations: ConversationFactory,
    fake: FakeProvider,
) -> None:
    conv = await conversations.create(user)
    cid = conv["conversation_id"]
    fake.enqueue(FakeReply(text=LONG, chunk_delay=0.05))
    async with live.stream(
        "POST",
        f"/api/v1/conversations/{cid}/messages?stream=true",
        json={"content": "go"},
        headers=user.headers,
    ) as r:
        frames = await read_events(r, stop_after=3)  # start + 2 deltas, then hang up
    assert [f["event"] for f in frames] == ["start", "delta", "delta"]
    msg = await wait_status(live, user, cid, 4, "cancelled")
    assert LONG.startswith(msg["content"]) and len(msg["content"]) >= 16
    assert len(msg["content"]) < len(LONG)
    r = await live.get(f"/api/v1/conversations/{cid}", headers=user.headers)
    assert r.json()["messages"][2]["content"] == "go"  # the question is kept


async def test_reattach_with_last_event_id(
    live: httpx.AsyncClient, ctx: AppCtx, user: AuthedUser, fake: FakeProvider
) -> None:
    hub = hub_of(ctx)
    hub.grace = 5.0
    try:
        fake.enqueue(FakeReply(text=LONG, chunk_delay=0.03))
        async with live.stream(
            "POST",
            "/api/v1/conversations",
            json={"first_message": "hi", "stream": True},
            headers=user.headers,
        ) as r:
            first = await read_events(r, stop_after=3)
        ids = first[0]["data"]
        cid, mid = ids["conversation_id"], ids["assistant_message_id"]
        url = f"/api/v1/conversations/{cid}/messages/{mid}/stream"
        async with live.stream("GET", url, headers={**user.headers, "Last-Event-ID": "3"}) as r:
            assert r.status_code == 200
            rest = await read_events(r)
    finally:
        hub.grace = 0.0
    assert rest[0]["id"] == 4 and rest[-1]["event"] == "done"
    text = "".join(f["data"]["text"] for f in first + rest if f["event"] == "delta")
    assert text == LONG
    # Attaching after the end replays the stored reply.
    r = await live.get(url, headers=user.headers)
    frames = parse_frames(r.text)
    assert frames[1]["data"]["text"] == LONG and frames[-1]["event"] == "done"


async def test_cancel_endpoint_stops_generation(
    live: httpx.AsyncClient, user: AuthedUser, fake: FakeProvider
) -> None:
    fake.enqueue(FakeReply(text=LONG * 3, chunk_delay=0.05))
    async with live.stream(
        "POST",
        "/api/v1/conversations?stream=true",
        json={"first_message": "long"},
        headers=user.headers,
    ) as r:
        reader = SSEReader(r)
        head = await reader.read(stop_after=2)
        ids = head[0]["data"]
        c = await live.post(
            f"/api/v1/conversations/{ids['conversation_id']}/messages/{ids['assistant_message_id']}/cancel",
            headers=user.headers,
        )
        assert c.status_code == 200 and c.json()["status"] == "cancelled"
        tail = await reader.read()
    assert tail[-1]["event"] == "cancelled"
    msg = await wait_status(live, user, ids["conversation_id"], 2, "cancelled")
    assert 0 < len(msg["content"]) < len(LONG * 3)


async def test_other_user_cannot_attach_or_cancel(
    live: httpx.AsyncClient, users: Any, conversations: ConversationFactory
) -> None:
    owner, intruder = await users.create(), await users.create()
    conv = await conversations.create(owner)
    cid, mid = conv["conversation_id"], conv["assistant_message"]["id"]  # type: ignore[index]
    for r in (
        await live.get(
            f"/api/v1/conversations/{cid}/messages/{mid}/stream", headers=intruder.headers
        ),
        await live.post(
            f"/api/v1/conversations/{cid}/messages/{mid}/cancel", headers=intruder.headers
        ),
        await live.post(
            f"/api/v1/conversations/{cid}/messages/{mid}/regenerate", headers=intruder.headers
        ),
    ):
        assert r.status_code == 404, r.text


async def test_regenerate_supersedes_latest_reply(
    client: httpx.AsyncClient,
    user: AuthedUser,
    conversations: ConversationFactory,
    fake: FakeProvider,
) -> None:
    conv = await conversations.create(user, "Q1")
    cid, first_reply = conv["conversation_id"], conv["assistant_message"]["id"]  # type: ignore[index]
    fake.enqueue("A better answer")
    r = await client.post(
        f"/api/v1/conversations/{cid}/messages/{first_reply}/regenerate", headers=user.headers
    )
    assert r.status_code == 201, r.text
    new = r.json()["assistant_message"]
    assert new["content"] == "A better answer" and new["seq"] == 3
    assert new["reply_to_id"] == conv["user_message"]["id"]  # type: ignore[index]
    assert [m.content for m in fake.requests[-1].messages][-1] == "Q1"
    r = await client.get(f"/api/v1/conversations/{cid}", headers=user.headers)
    old = next(m for m in r.json()["messages"] if m["id"] == first_reply)
    assert old["superseded"] is True and old["content"] == "You said: Q1"
    # Only the current latest reply can be regenerated.
    r = await client.post(
        f"/api/v1/conversations/{cid}/messages/{first_reply}/regenerate", headers=user.headers
    )
    assert r.status_code == 409
    # The next turn's history carries the new reply, not the superseded one.
    await client.post(
        f"/api/v1/conversations/{cid}/messages", json={"content": "Q2"}, headers=user.headers
    )
    contents = [m.content for m in fake.requests[-1].messages]
    assert "A better answer" in contents and "You said: Q1" not in contents


async def test_model_writes_title(
    client: httpx.AsyncClient, ctx: AppCtx, user: AuthedUser, fake: FakeProvider
) -> None:
    chat: ChatService = ctx.app.state.container.chat
    default = chat.default_profile
    chat.default_profile = dataclasses.replace(default, model_titles=True)
    try:
        fake.enqueue("Paris is the capital.", '"Capital of France"')
        r = await client.post(
            "/api/v1/conversations",
            json={"first_message": "what is the capital of france"},
            headers=user.headers,
        )
        cid = r.json()["conversation_id"]
        await chat.drain()
    finally:
        chat.default_profile = default
    r = await client.get(f"/api/v1/conversations/{cid}", headers=user.headers)
    assert r.json()["title"] == "Capital of France"


async def test_long_history_uses_running_summary(
    client: httpx.AsyncClient, ctx: AppCtx, user: AuthedUser, fake: FakeProvider
) -> None:
    chat: ChatService = ctx.app.state.container.chat
    saved = chat.default_profile
    chat.default_profile = dataclasses.replace(saved, context_max_tokens=120)
    try:
        r = await client.post(
            "/api/v1/conversations", json={"first_message": "word " * 30}, headers=user.headers
        )
        cid = r.json()["conversation_id"]
        for i in range(4):
            fake.enqueue(f"reply {i} " + "text " * 30, "SUMMARY: user sent long messages")
            r = await client.post(
                f"/api/v1/conversations/{cid}/messages",
                json={"content": f"msg {i} " + "word " * 30},
                headers=user.headers,
            )
            assert r.status_code == 201
            await chat.drain()
            manifest = r.json()["assistant_message"]["context_manifest"]
            assert manifest["total_tokens"] <= 120
        assert manifest["dropped_message_ids"]
        assert any(item["kind"] == "summary" for item in manifest["items"])
    finally:
        chat.default_profile = saved


async def test_websocket_chat_and_cancel(
    live: httpx.AsyncClient, user: AuthedUser, fake: FakeProvider
) -> None:
    import websockets

    # The replaced system's path form (/chat/ws/{user_id}) is served too.
    url = str(live.base_url).replace("http://", "ws://") + f"/api/v1/chat/ws/{user.id}"
    fake.enqueue("Hello over websockets", FakeReply(text=LONG * 3, chunk_delay=0.05))
    async with websockets.connect(f"{url}?token={user.access_token}") as ws:
        await ws.send(json.dumps({"type": "message", "content": "hi there", "mode": "open_chat"}))
        events = []
        while not events or events[-1]["type"] != "done":
            events.append(json.loads(await ws.recv()))
        assert events[0]["type"] == "start"
        text = "".join(e["data"]["text"] for e in events if e["type"] == "delta")
        assert text == "Hello over websockets"
        response = json.loads(await ws.recv())  # the seed clients' single reply frame
        assert response["type"] == "response" and response["content"] == text
        cid = events[0]["data"]["conversation_id"]
        await ws.send(json.dumps({"type": "message", "conversation_id": cid, "content": "more"}))
        start = json.loads(await ws.recv())
        mid = start["data"]["assistant_message_id"]
        await ws.send(json.dumps({"type": "cancel", "message_id": mid}))
        last = start
        while last["type"] not in ("cancelled", "response"):
            last = json.loads(await ws.recv())
        assert last["type"] == "cancelled"
        await ws.send(json.dumps({"type": "message", "conversation_id": "nope", "content": "x"}))
        err = json.loads(await ws.recv())
        assert err["type"] == "error" and err["data"]["code"] == "not_found"
    msg = await wait_status(live, user, cid, 4, "cancelled")
    assert len(msg["content"]) < len(LONG * 3)


async def test_websocket_requires_auth(live: httpx.AsyncClient) -> None:
    import websockets

    url = str(live.base_url).replace("http://", "ws://") + "/api/v1/chat/ws?token=bad"
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with websockets.connect(url):
            pass
