"""Every entry point goes through the same turn: the profile reaches the model, and the same
admission (rate limit, moderation) refuses turns on every path; a long conversation keeps its
first fact through the running summary. On SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest
from limits.aio.storage import MemoryStorage

from botgpt.conversations.profile import TurnProfile
from botgpt.conversations.turn import ChatService
from botgpt.llm.fake import FakeProvider
from botgpt.llm.pool import ProviderChoice
from botgpt.moderation.service import BlocklistModerator
from botgpt.ratelimit import RateLimiter
from tests.api.test_streaming import live  # noqa: F401  (fixture)
from tests.conftest import AppCtx, AuthedUser, UserFactory

PERSONA = "You are Zed, the lighthouse keeper's assistant."

Send = Callable[[httpx.AsyncClient, AuthedUser, str], Awaitable[int]]


async def _create(client: httpx.AsyncClient, user: AuthedUser, text: str) -> int:
    r = await client.post("/api/v1/conversations", json={"message": text}, headers=user.headers)
    return r.status_code


async def _send(client: httpx.AsyncClient, user: AuthedUser, text: str) -> int:
    r = await client.post("/api/v1/conversations", json={"message": "first"}, headers=user.headers)
    if r.status_code != 201:
        return r.status_code
    cid = r.json()["conversation_id"]
    r = await client.put(
        f"/api/v1/conversations/{cid}/messages", json={"message": text}, headers=user.headers
    )
    return r.status_code


async def _chat_send(client: httpx.AsyncClient, user: AuthedUser, text: str) -> int:
    r = await client.post("/api/v1/chat/send", json={"message": text}, headers=user.headers)
    return r.status_code


async def _stream(client: httpx.AsyncClient, user: AuthedUser, text: str) -> int:
    r = await client.post(
        "/api/v1/conversations?stream=true", json={"message": text}, headers=user.headers
    )
    return r.status_code


ENTRY_POINTS: dict[str, Send] = {
    "create": _create,
    "send": _send,
    "chat_send": _chat_send,
    "stream": _stream,
}


@pytest.fixture
def persona(ctx: AppCtx) -> Iterator[ChatService]:
    chat: ChatService = ctx.app.state.container.chat
    saved = chat.default_profile
    chat.default_profile = dataclasses.replace(
        saved, system_prompt=PERSONA, provider=ProviderChoice(model="zed-1"), temperature=0.1
    )
    yield chat
    chat.default_profile = saved


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
async def test_profile_reaches_the_model(
    entry: str,
    client: httpx.AsyncClient,
    user: AuthedUser,
    fake: FakeProvider,
    persona: ChatService,
) -> None:
    status = await ENTRY_POINTS[entry](client, user, "Who are you?")
    assert status in (200, 201)
    request = fake.requests[-1]
    assert request.messages[0].role == "system" and request.messages[0].content == PERSONA
    assert request.model == "zed-1" and request.temperature == 0.1


async def test_websocket_uses_the_profile(
    live: httpx.AsyncClient,  # noqa: F811
    user: AuthedUser,
    fake: FakeProvider,
    persona: ChatService,
) -> None:
    import websockets

    url = str(live.base_url).replace("http://", "ws://") + "/api/v1/chat/ws"
    async with websockets.connect(f"{url}?token={user.access_token}") as ws:
        await ws.send(json.dumps({"type": "message", "content": "hello"}))
        while json.loads(await ws.recv())["type"] != "done":
            pass
    assert fake.requests[-1].messages[0].content == PERSONA
    assert fake.requests[-1].model == "zed-1"


@pytest.fixture
def strict_admission(ctx: AppCtx) -> Iterator[None]:
    admission = ctx.app.state.container.chat.admission
    saved = admission.moderator, admission.limiter
    admission.moderator = BlocklistModerator(["forbidden"])
    admission.limiter = RateLimiter("chat-test", "3/minute", MemoryStorage())
    yield
    admission.moderator, admission.limiter = saved


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
async def test_same_admission_everywhere(
    entry: str, client: httpx.AsyncClient, users: UserFactory, strict_admission: None
) -> None:
    user = await users.create()
    assert await ENTRY_POINTS[entry](client, user, "this is forbidden talk") == 422
    for _ in range(3):
        await ENTRY_POINTS["chat_send"](client, user, "fine")
    assert await ENTRY_POINTS[entry](client, user, "one too many") == 429


async def test_openai_completions_share_the_admission(
    client: httpx.AsyncClient, user: AuthedUser, strict_admission: None
) -> None:
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "forbidden"}]}
    r = await client.post("/v1/chat/completions", json=body, headers=user.headers)
    assert r.status_code == 422
    ok = {"model": "fake-model", "messages": [{"role": "user", "content": "fine"}]}
    codes = [
        (await client.post("/v1/chat/completions", json=ok, headers=user.headers)).status_code
        for _ in range(4)
    ]
    # The refused message counted too, as on every path: 3 per minute in all.
    assert codes == [200, 200, 429, 429]


async def test_sixty_turns_keep_the_first_fact_through_the_summary(
    client: httpx.AsyncClient, user: AuthedUser, fake: FakeProvider, ctx: AppCtx
) -> None:
    chat: ChatService = ctx.app.state.container.chat
    assert chat.default_profile.memory_messages == 50  # the documented default window
    r = await client.post(
        "/api/v1/conversations",
        json={"message": "Remember this: my locker code is 4711."},
        headers=user.headers,
    )
    cid = r.json()["conversation_id"]
    first_id = r.json()["user_message"]["id"]
    dropped: list[str] = []
    for i in range(59):
        r = await client.post(
            f"/api/v1/conversations/{cid}/messages",
            json={"content": f"turn {i}"},
            headers=user.headers,
        )
        assert r.status_code == 201, r.text
        dropped += r.json()["assistant_message"]["context_manifest"]["dropped_message_ids"]
        await chat.drain()
    manifest = r.json()["assistant_message"]["context_manifest"]
    # Well under the token budget: the memory window dropped the oldest messages...
    assert manifest["total_tokens"] < TurnProfile.from_settings(ctx.settings).context_max_tokens
    # The turns that dropped messages listed them (the first one among them).
    assert first_id in dropped
    kept = [i for i in manifest["items"] if i["kind"] == "message"]
    assert len(kept) <= 51
    # ...and the first one reached the model through the running summary.
    summary = next(i for i in manifest["items"] if i["kind"] == "summary")
    assert "4711" in summary["text"]
    last_turn = next(r for r in reversed(fake.requests) if r.messages[-1].content == "turn 58")
    prompt = [m.content for m in last_turn.messages if m.role == "system"]
    assert any("4711" in p for p in prompt)
    g = await client.get(f"/api/v1/conversations/{cid}", headers=user.headers)
    assert g.json()["messages"][0]["id"] == first_id  # nothing is deleted, only summarised
