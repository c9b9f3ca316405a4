"""The example requests of seeds 002 and 004, replayed unchanged (plus the service key a
deployment needs), on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import AppCtx
from tests.documents.conftest import jobs_running  # noqa: F401  (fixture)

SEED_002_DOC = b"FastAPI is a modern Python web framework. It builds APIs from type hints.\n"


@pytest.mark.usefixtures("jobs_running")
async def test_seed_002_tests_2_to_5(
    client: httpx.AsyncClient, admin_key: str, ctx: AppCtx
) -> None:
    key = {"Authorization": f"Bearer {admin_key}"}
    user = f"user{uuid.uuid4().hex[:6]}"
    # Test 2: open chat, the seed's body.
    r = await client.post(
        "/api/v1/conversations",
        json={"user_id": user, "message": "Explain FastAPI in simple terms", "mode": "open_chat"},
        headers=key,
    )
    assert r.status_code == 201, r.text
    cid = r.json()["conversation_id"]
    assert r.json()["assistant_response"]
    # Test 3: continue it.
    r = await client.post(
        f"/api/v1/conversations/{cid}/messages",
        json={"message": "Can you give me a code example?"},
        headers=key,
    )
    assert r.status_code == 201, r.text
    # Test 4: upload for RAG, the user named in the form.
    r = await client.post(
        "/api/v1/documents",
        files={"file": ("fastapi.txt", SEED_002_DOC, "text/plain")},
        data={"user_id": user},
        headers=key,
    )
    assert r.status_code == 201, r.text
    doc_id = r.json()["id"]
    await _wait(client, doc_id, key)
    # Test 5: a RAG conversation over it.
    r = await client.post(
        "/api/v1/conversations",
        json={
            "user_id": user,
            "message": "What does the document say about FastAPI?",
            "mode": "rag_mode",
            "document_ids": [doc_id],
        },
        headers=key,
    )
    assert r.status_code == 201, r.text
    reply = r.json()["assistant_message"]
    assert r.json()["mode"] == "grounded" and reply["citations"]
    assert reply["citations"][0]["document_id"] == doc_id


async def _wait(client: httpx.AsyncClient, doc_id: str, headers: dict[str, str]) -> None:
    import asyncio

    for _ in range(600):
        r = await client.get(f"/api/v1/documents/{doc_id}", headers=headers)
        if r.json()["status"] in ("ready", "failed"):
            assert r.json()["status"] == "ready", r.text
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the document did not become ready")


async def test_seed_004_account_chat_conversations_faqs_analytics(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    email = f"seed4-{uuid.uuid4().hex[:6]}@example.com"
    r = await client.post(
        "/api/v1/auth/register",
        json={
            "email": email,
            "password": "a long password",
            "username": f"seed4_{uuid.uuid4().hex[:6]}",
            "full_name": "Seed Four",
        },
    )
    assert r.status_code == 201, r.text
    login = {"email": email, "password": "a long password"}
    r = await client.post("/api/v1/auth/login", json=login)
    tokens = r.json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200
    auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
    # POST /api/v1/chat/send, new and existing conversation, with the seed's fields.
    r = await client.post(
        "/api/v1/chat/send",
        json={"message": "Hello, how can you help me?", "language": "en"},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    sent = r.json()
    assert sent["type"] == "response" and sent["content"] and sent["message_id"]
    cid = sent["conversation_id"]
    r = await client.post(
        "/api/v1/chat/send", json={"message": "And more?", "conversation_id": cid}, headers=auth
    )
    assert r.status_code == 200 and r.json()["conversation_id"] == cid
    # Conversation management.
    assert (await client.get("/api/v1/conversations", headers=auth)).json()["total"] == 1
    assert (await client.get(f"/api/v1/conversations/{cid}", headers=auth)).status_code == 200
    r = await client.put(f"/api/v1/conversations/{cid}", json={"title": "Renamed"}, headers=auth)
    assert r.status_code == 200 and r.json()["title"] == "Renamed"
    # FAQ management and search (published is the seed's live status).
    r = await client.post(
        "/api/v1/faqs",
        json={
            "question": "How do I reset my password?",
            "answer": "Use the link on the sign-in page.",
            "category": "Account",
            "status": "published",
            "priority": 5,
            "tags": ["password"],
        },
        headers=auth,
    )
    assert r.status_code == 201, r.text
    faq = r.json()
    assert (await client.get(f"/api/v1/faqs/{faq['id']}", headers=auth)).status_code == 200
    r = await client.put(f"/api/v1/faqs/{faq['id']}", json={"priority": 7}, headers=auth)
    assert r.json()["priority"] == 7
    r = await client.get("/api/v1/faqs/search", params={"q": "forgot my password"}, headers=auth)
    assert r.json()["results"][0]["id"] == faq["id"]
    assert (await client.get("/api/v1/faqs", headers=auth)).json()["total"] == 1
    assert (await client.delete(f"/api/v1/faqs/{faq['id']}", headers=auth)).status_code == 204
    # Analytics (an admin's) at the seed's paths.
    admin = {"Authorization": f"Bearer {admin_key}"}
    me = (await client.get("/api/v1/users/me", headers=auth)).json()
    for path in (
        "/api/v1/analytics/dashboard",
        f"/api/v1/analytics/user/{me['id']}",
        "/api/v1/analytics/conversations",
    ):
        assert (await client.get(path, headers=admin)).status_code == 200, path
    assert (await client.delete(f"/api/v1/conversations/{cid}", headers=auth)).status_code == 204
    r = await client.post("/api/v1/auth/logout", headers=auth)
    assert r.status_code == 204
    assert (await client.get("/api/v1/users/me", headers=auth)).status_code == 401
