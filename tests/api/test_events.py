"""Domain events (what webhooks deliver): turns and ingestions report what happened."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from botgpt.llm.errors import ProviderUnavailable
from botgpt.llm.fake import FakeProvider
from tests.conftest import AppCtx, AuthedUser

Event = tuple[str, str, dict[str, Any]]


@pytest.fixture
def events(ctx: AppCtx) -> Iterator[list[Event]]:
    chat = ctx.app.state.container.chat
    saved = chat.on_event
    seen: list[Event] = []
    chat.on_event = lambda owner, kind, data: seen.append((owner, kind, data))
    yield seen
    chat.on_event = saved


async def test_a_turn_reports_its_conversation_and_its_outcome(
    client: httpx.AsyncClient, user: AuthedUser, fake: FakeProvider, events: list[Event]
) -> None:
    r = await client.post(
        "/api/v1/conversations", json={"first_message": "hi"}, headers=user.headers
    )
    cid = r.json()["conversation_id"]
    fake.enqueue(
        ProviderUnavailable("down"), ProviderUnavailable("down"), ProviderUnavailable("down")
    )
    await client.post(
        f"/api/v1/conversations/{cid}/messages", json={"content": "again"}, headers=user.headers
    )
    kinds = [(owner, kind) for owner, kind, _ in events]
    assert kinds == [
        (user.id, "conversation.created"),
        (user.id, "message.completed"),
        (user.id, "message.failed"),
    ]
    completed, failed = events[1][2], events[2][2]
    assert completed["conversation_id"] == cid and completed["model"] == "fake-model"
    assert completed["prompt_tokens"] > 0 and completed["completion_tokens"] > 0
    assert failed["error_code"] == "provider_unavailable"
