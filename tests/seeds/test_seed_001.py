"""Seed 001's key endpoints, replayed unchanged on its unprefixed paths (with a service key)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.documents.conftest import jobs_running  # noqa: F401  (fixture)
from tests.seeds.test_seed_002_004 import _wait

REVENUE = b"Revenue grew 12 percent in 2025 to 4.2 million."


@pytest.mark.usefixtures("jobs_running")
async def test_seed_001_endpoints(client: httpx.AsyncClient, admin_key: str) -> None:
    key = {"Authorization": f"Bearer {admin_key}"}
    user = str(uuid.uuid4())
    # 1. Create conversation (open chat).
    r = await client.post(
        "/conversations",
        json={
            "user_id": user,
            "first_message": "Explain quantum computing",
            "mode": "open_chat",
            "document_ids": [],
        },
        headers=key,
    )
    assert r.status_code == 201, r.text
    open_id = r.json()["conversation_id"]
    # 7. Upload document, 8. list documents.
    r = await client.post(
        "/documents",
        files={
            "file": (
                "revenue.txt",
                b"Revenue grew 12 percent in 2025 to 4.2 million.",
                "text/plain",
            )
        },
        data={"user_id": user},
        headers=key,
    )
    assert r.status_code == 201, r.text
    doc_id = r.json()["id"]
    await _wait(client, doc_id, key)
    listed = (await client.get("/documents", params={"user_id": user}, headers=key)).json()
    assert [d["id"] for d in listed["items"]] == [doc_id]
    # 2. Create conversation (RAG mode).
    r = await client.post(
        "/conversations",
        json={
            "user_id": user,
            "first_message": "What does the document say about revenue?",
            "mode": "grounded_rag",
            "document_ids": [doc_id],
        },
        headers=key,
    )
    assert r.status_code == 201, r.text
    assert r.json()["assistant_message"]["citations"][0]["document_id"] == doc_id
    # 3. List, 4. get, 5. add a message, 6. delete.
    page = (
        await client.get(
            "/conversations", params={"user_id": user, "page": 1, "limit": 20}, headers=key
        )
    ).json()
    assert page["total"] == 2 and page["page"] == 1
    assert (await client.get(f"/conversations/{open_id}", headers=key)).status_code == 200
    r = await client.post(
        f"/conversations/{open_id}/messages",
        json={"content": "Tell me more about that"},
        headers=key,
    )
    assert r.status_code == 201, r.text
    assert (await client.delete(f"/conversations/{open_id}", headers=key)).status_code == 204
    assert (await client.get(f"/conversations/{open_id}", headers=key)).status_code == 404
