"""The answer cache: a repeated first question is answered without the model, never across
owners, and missed once the assistant (profile, bot version) or its documents change."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import httpx
import pytest

from botgpt.conversations.turn import ChatService
from botgpt.llm.fake import FakeProvider
from tests.bots.test_public_chat import make_bot, say
from tests.conftest import AppCtx, AuthedUser, UserFactory


@pytest.fixture
def cached(ctx: AppCtx) -> Iterator[ChatService]:
    chat: ChatService = ctx.app.state.container.chat
    saved = chat.default_profile
    chat.default_profile = dataclasses.replace(saved, answer_cache=True)
    yield chat
    chat.default_profile = saved


async def _ask(client: httpx.AsyncClient, user: AuthedUser, text: str) -> dict[str, object]:
    r = await client.post("/api/v1/conversations", json={"message": text}, headers=user.headers)
    assert r.status_code == 201, r.text
    reply: dict[str, object] = r.json()["assistant_message"]
    return reply


async def test_hit_miss_and_isolation(
    client: httpx.AsyncClient,
    users: UserFactory,
    fake: FakeProvider,
    cached: ChatService,
) -> None:
    alice, bob = await users.create(), await users.create()
    fake.enqueue("Paris is the capital of France.")
    first = await _ask(client, alice, "What is the capital of France?")
    await cached.drain()  # the answer is kept in the background
    calls = len(fake.requests)
    again = await _ask(client, alice, "  what is the capital of france  ")
    assert again["content"] == "Paris is the capital of France." and again["source"] == "cached"
    assert len(fake.requests) == calls and again["usage"]["total_tokens"] == 0  # type: ignore[index]
    assert first["source"] == "model"
    # Another question misses; another owner never sees alice's answers.
    assert (await _ask(client, alice, "What is the capital of Spain?"))["source"] == "model"
    assert (await _ask(client, bob, "What is the capital of France?"))["source"] == "model"
    # A follow-up inside a conversation depends on its history: never cached.
    r = await client.post(
        "/api/v1/conversations", json={"message": "Hi there, friend"}, headers=alice.headers
    )
    cid = r.json()["conversation_id"]
    await cached.drain()
    r = await client.post(
        f"/api/v1/conversations/{cid}/messages",
        json={"content": "What is the capital of France?"},
        headers=alice.headers,
    )
    assert r.json()["assistant_message"]["source"] == "model"


async def test_a_profile_change_misses(
    client: httpx.AsyncClient, user: AuthedUser, fake: FakeProvider, ctx: AppCtx
) -> None:
    bot = await make_bot(client, user, answer_cache=True)
    assert bot["answer_cache"] is True
    await say(client, bot["id"], "Do you sell teapots?")
    await ctx.app.state.container.chat.drain()
    assert (await say(client, bot["id"], "Do you sell teapots?")).json()["source"] == "cached"
    # A new prompt is a new bot version: the cached answer no longer applies.
    await client.patch(
        f"/api/v1/bots/{bot['id']}", json={"system_prompt": "Be terse."}, headers=user.headers
    )
    assert (await say(client, bot["id"], "Do you sell teapots?")).json()["source"] == "model"
