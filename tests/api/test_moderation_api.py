"""A message refused by moderation is answered 422 `content_flagged` and nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from botgpt.moderation.service import BlocklistModerator
from tests.conftest import AppCtx, AuthedUser


@pytest.fixture
def blocklist(ctx: AppCtx) -> Iterator[None]:
    admission = ctx.app.state.container.chat.admission
    saved = admission.moderator
    admission.moderator = BlocklistModerator(["forbidden"])
    yield
    admission.moderator = saved


async def test_flagged_messages_are_refused_and_not_stored(
    client: httpx.AsyncClient, user: AuthedUser, blocklist: None
) -> None:
    r = await client.post(
        "/api/v1/conversations", json={"first_message": "a forbidden thing"}, headers=user.headers
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "content_flagged"
    assert r.json()["error"]["details"] == {"categories": ["blocklist"]}
    listed = await client.get("/api/v1/conversations", headers=user.headers)
    assert listed.json()["total"] == 0

    r = await client.post(
        "/api/v1/conversations", json={"first_message": "a fine thing"}, headers=user.headers
    )
    assert r.status_code == 201
    cid = r.json()["conversation_id"]
    r = await client.post(
        f"/api/v1/conversations/{cid}/messages",
        json={"content": "FORBIDDEN again"},
        headers=user.headers,
    )
    assert r.status_code == 422
    history = await client.get(f"/api/v1/conversations/{cid}", headers=user.headers)
    assert len(history.json()["messages"]) == 2  # only the first, answered turn


async def test_openai_compatible_completions_are_moderated_too(
    client: httpx.AsyncClient, user: AuthedUser, ctx: AppCtx, blocklist: None
) -> None:
    # The same admission as every turn: the blocklist set on the chat turn applies here too.
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "forbidden"}]}
    r = await client.post("/v1/chat/completions", json=body, headers=user.headers)
    assert r.status_code == 422
    assert "content policy" in r.json()["error"]["message"]  # OpenAI's envelope
