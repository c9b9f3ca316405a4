"""Conversations: create, list, get, patch, delete, messages; seed request shapes; ownership."""

from __future__ import annotations

import httpx

from tests.conftest import AuthedUser, ConversationFactory, UserFactory


async def test_create_returns_turn(client: httpx.AsyncClient, user: AuthedUser) -> None:
    r = await client.post(
        "/api/v1/conversations",
        json={"first_message": "Explain quantum computing", "mode": "open_chat"},
        headers=user.headers,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["mode"] == "open"
    assert body["title"] == "Explain quantum computing"
    assert body["user_message"]["seq"] == 1 and body["user_message"]["role"] == "user"
    assert body["assistant_message"]["seq"] == 2
    assert body["assistant_message"]["status"] == "complete"
    assert body["assistant_message"]["reply_to_id"] == body["user_message"]["id"]
    assert body["assistant_response"] == "You said: Explain quantum computing"
    usage = body["assistant_message"]["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert body["assistant_message"]["latency_ms"] >= 0


async def test_seed_shapes_message_alias_and_put(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    r = await client.post(
        "/api/v1/conversations",
        json={"message": "Explain FastAPI in simple terms", "mode": "open_chat"},
        headers=user.headers,
    )
    assert r.status_code == 201
    cid = r.json()["conversation_id"]
    r = await client.put(
        f"/api/v1/conversations/{cid}/messages",
        json={"message": "Code example?"},
        headers=user.headers,
    )
    assert r.status_code == 200
    assert r.json()["user_message"]["seq"] == 3
    r = await client.post(
        f"/api/v1/conversations/{cid}/messages", json={"content": "More"}, headers=user.headers
    )
    assert r.status_code == 201
    assert r.json()["assistant_message"]["seq"] == 6


async def test_history_sent_to_model(
    client: httpx.AsyncClient, user: AuthedUser, conversations: ConversationFactory, fake: object
) -> None:
    conv = await conversations.create(user, "What is Python?")
    await client.post(
        f"/api/v1/conversations/{conv['conversation_id']}/messages",
        json={"content": "What are its benefits?"},
        headers=user.headers,
    )
    last = fake.requests[-1]  # type: ignore[attr-defined]
    roles = [m.role for m in last.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert last.messages[1].content == "What is Python?"
    assert last.messages[-1].content == "What are its benefits?"


async def test_create_validation(client: httpx.AsyncClient, user: AuthedUser) -> None:
    for payload in (
        {},
        {"first_message": ""},
        {"first_message": "   "},
        {"first_message": "x", "mode": "weird"},
    ):
        r = await client.post("/api/v1/conversations", json=payload, headers=user.headers)
        assert r.status_code == 422, payload
        assert r.json()["error"]["code"] == "validation_error"
    r = await client.get("/api/v1/conversations", headers=user.headers)
    assert r.json()["total"] == 0  # nothing half-created


async def test_grounded_without_documents_is_422(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    r = await client.post(
        "/api/v1/conversations",
        json={"first_message": "What does the doc say?", "mode": "grounded_rag"},
        headers=user.headers,
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_input"
    assert "document_ids" in r.json()["error"]["message"]


async def test_list_pagination_and_preview(
    client: httpx.AsyncClient, users: UserFactory, conversations: ConversationFactory
) -> None:
    owner = await users.create()
    for i in range(3):
        await conversations.create(owner, f"Question number {i}")
    r = await client.get("/api/v1/conversations?page=1&limit=2", headers=owner.headers)
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 3 and body["pages"] == 2 and len(body["items"]) == 2
    first = body["items"][0]
    assert first["title"] == "Question number 2"  # newest first
    assert first["message_count"] == 2
    assert first["last_message_preview"] == "You said: Question number 2"
    r = await client.get("/api/v1/conversations?page=2&limit=2", headers=owner.headers)
    assert len(r.json()["items"]) == 1
    r = await client.get("/api/v1/conversations?limit=0", headers=owner.headers)
    assert r.status_code == 422


async def test_get_patch_delete(
    client: httpx.AsyncClient, user: AuthedUser, conversations: ConversationFactory
) -> None:
    conv = await conversations.create(user, "Hello")
    cid = conv["conversation_id"]
    r = await client.get(f"/api/v1/conversations/{cid}", headers=user.headers)
    assert r.status_code == 200
    body = r.json()
    assert [m["seq"] for m in body["messages"]] == [1, 2]
    assert body["usage"]["total_tokens"] > 0
    manifest = body["messages"][1]["context_manifest"]
    ids = [i.get("id") for i in manifest["items"] if i["kind"] == "message"]
    assert ids == [body["messages"][0]["id"]]
    assert manifest["total_tokens"] <= manifest["budget"]
    r = await client.patch(
        f"/api/v1/conversations/{cid}",
        json={"title": "Renamed", "archived": True},
        headers=user.headers,
    )
    assert r.status_code == 200 and r.json()["title"] == "Renamed" and r.json()["archived"] is True
    r = await client.get("/api/v1/conversations", headers=user.headers)
    assert cid not in [c["id"] for c in r.json()["items"]]
    r = await client.get("/api/v1/conversations?archived=true", headers=user.headers)
    assert cid in [c["id"] for c in r.json()["items"]]
    r = await client.patch(f"/api/v1/conversations/{cid}", json={}, headers=user.headers)
    assert r.status_code == 422
    r = await client.delete(f"/api/v1/conversations/{cid}", headers=user.headers)
    assert r.status_code == 204
    r = await client.get(f"/api/v1/conversations/{cid}", headers=user.headers)
    assert r.status_code == 404


async def test_other_users_conversation_is_404_everywhere(
    client: httpx.AsyncClient, users: UserFactory, conversations: ConversationFactory
) -> None:
    owner, intruder = await users.create(), await users.create()
    conv = await conversations.create(owner)
    cid = conv["conversation_id"]
    h = intruder.headers
    calls = [
        client.get(f"/api/v1/conversations/{cid}", headers=h),
        client.patch(f"/api/v1/conversations/{cid}", json={"title": "x"}, headers=h),
        client.post(f"/api/v1/conversations/{cid}/messages", json={"content": "hi"}, headers=h),
        client.put(f"/api/v1/conversations/{cid}/messages", json={"message": "hi"}, headers=h),
        client.delete(f"/api/v1/conversations/{cid}", headers=h),
    ]
    for call in calls:
        r = await call
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "not_found"
    r = await client.get("/api/v1/conversations", headers=h)
    assert r.json()["total"] == 0
    r = await client.get(f"/api/v1/conversations/{cid}", headers=owner.headers)
    assert r.json()["message_count"] == 2  # nothing changed


async def test_user_token_cannot_act_for_others(
    client: httpx.AsyncClient, users: UserFactory
) -> None:
    a, b = await users.create(), await users.create()
    r = await client.get(f"/api/v1/conversations?user_id={b.id}", headers=a.headers)
    assert r.status_code == 403


async def test_service_key_acts_for_seed_user_ids(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    h = {"Authorization": f"Bearer {admin_key}"}
    r = await client.post(
        "/api/v1/conversations",
        json={"user_id": "user123", "message": "Hi from a seed client", "mode": "open_chat"},
        headers=h,
    )
    assert r.status_code == 201, r.text
    cid = r.json()["conversation_id"]
    r = await client.get("/api/v1/conversations?user_id=user123&page=1&limit=20", headers=h)
    assert [c["id"] for c in r.json()["items"]] == [cid]
    r = await client.get("/api/v1/conversations?user_id=someone-else", headers=h)
    assert r.json()["total"] == 0
    r = await client.get(f"/api/v1/conversations/{cid}?user_id=someone-else", headers=h)
    assert r.status_code == 404


async def test_usage_totals_per_user(
    client: httpx.AsyncClient, users: UserFactory, conversations: ConversationFactory
) -> None:
    owner, other = await users.create(), await users.create()
    a = await conversations.create(owner, "one")
    b = await conversations.create(owner, "two")
    await conversations.create(other, "three")
    r = await client.get("/api/v1/users/me/usage", headers=owner.headers)
    assert r.status_code == 200
    body = r.json()
    assert body["conversations"] == 2 and body["messages"] == 4
    expected = sum(
        c["assistant_message"]["usage"]["total_tokens"]  # type: ignore[index]
        for c in (a, b)
    )
    assert body["total_tokens"] == expected > 0
