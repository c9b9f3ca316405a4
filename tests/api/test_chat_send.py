"""The replaced systems' shapes: POST /api/v1/chat/send, PUT a conversation, `language`."""

from __future__ import annotations

import httpx

from botgpt.llm.fake import FakeProvider
from tests.conftest import AuthedUser


async def test_chat_send_starts_then_continues_a_conversation(
    client: httpx.AsyncClient, user: AuthedUser, fake: FakeProvider
) -> None:
    r = await client.post("/api/v1/chat/send", json={"message": "Hello"}, headers=user.headers)
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["type"] == "response"
    assert first["content"] == first["assistant_response"] == "You said: Hello"
    assert first["message_id"] == first["assistant_message"]["id"]
    assert first["timestamp"]
    r = await client.post(
        "/api/v1/chat/send",
        json={"content": "Again", "conversation_id": first["conversation_id"]},
        headers=user.headers,
    )
    assert r.status_code == 200 and r.json()["conversation_id"] == first["conversation_id"]
    history = await client.get(
        f"/api/v1/conversations/{first['conversation_id']}", headers=user.headers
    )
    assert [m["content"] for m in history.json()["messages"]] == [
        "Hello",
        "You said: Hello",
        "Again",
        "You said: Again",
    ]


async def test_chat_send_replays_the_same_shape_for_a_retried_key(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    headers = {**user.headers, "Idempotency-Key": "send-1"}
    first = await client.post("/api/v1/chat/send", json={"message": "Once"}, headers=headers)
    again = await client.post("/api/v1/chat/send", json={"message": "Once"}, headers=headers)
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json() and again.json()["type"] == "response"


async def test_language_asks_the_model_to_reply_in_it(
    client: httpx.AsyncClient, user: AuthedUser, fake: FakeProvider
) -> None:
    await client.post(
        "/api/v1/chat/send", json={"message": "Hallo", "language": "de"}, headers=user.headers
    )
    system = fake.requests[-1].messages[0]
    assert system.role == "system" and system.content.endswith("Always reply in German.")
    r = await client.post(
        "/api/v1/conversations",
        json={"first_message": "Hi", "language": "pt-BR"},
        headers=user.headers,
    )
    assert r.status_code == 201
    assert fake.requests[-1].messages[0].content.endswith("Always reply in Portuguese.")
    await client.post("/api/v1/conversations", json={"first_message": "Hi"}, headers=user.headers)
    assert "Always reply" not in fake.requests[-1].messages[0].content
    r = await client.post(
        "/api/v1/chat/send", json={"message": "x", "language": "not a code"}, headers=user.headers
    )
    assert r.status_code == 422


async def test_put_updates_a_conversation_like_patch(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    r = await client.post(
        "/api/v1/conversations", json={"first_message": "Hi"}, headers=user.headers
    )
    cid = r.json()["conversation_id"]
    r = await client.put(
        f"/api/v1/conversations/{cid}", json={"title": "Renamed"}, headers=user.headers
    )
    assert r.status_code == 200 and r.json()["title"] == "Renamed"
