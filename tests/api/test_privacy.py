"""Personal data: export (contents, streaming, who may export whom) and erasure (nothing left
behind, credentials dead at once, others untouched, the last admin kept); on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from botgpt.auth.models import User
from botgpt.auth.security import digest
from botgpt.jobs.queue import InProcessJobQueue
from botgpt.llm.fake import FakeProvider
from botgpt.privacy import service as privacy
from tests.conftest import AppCtx, AuthedUser, ConversationFactory, UserFactory
from tests.documents.conftest import Docs

EXPORT = "/api/v1/users/me/export"
ME = "/api/v1/users/me"

TULIPS = b"Tulips were traded for fortunes in Amsterdam during the seventeenth century."


@pytest.fixture(scope="module")
async def jobs_started(app_ctx: AppCtx) -> AsyncIterator[None]:
    """Ingestion runs on the job queue, which the test client does not start."""
    jobs: InProcessJobQueue = app_ctx.app.state.container.docs.jobs
    started_here = not jobs._workers
    await jobs.start()
    yield
    await jobs.join()
    if started_here:  # leave a queue started by the documents tests to them
        await jobs.stop()


@pytest.fixture
def docs(client: httpx.AsyncClient, ctx: AppCtx, jobs_started: None) -> Docs:
    """Document helpers bound to the app under test."""
    return Docs(client, ctx)


async def _export(
    client: httpx.AsyncClient, headers: dict[str, str], user_id: str | None = None
) -> httpx.Response:
    params = {"user_id": user_id} if user_id else {}
    return await client.get(EXPORT, headers=headers, params=params)


async def _owned_rows(docs: Docs, user_id: str, conversation_ids: list[str]) -> dict[str, int]:
    """Rows left of a user in every table that can hold their data."""
    by_user = {
        "users": "SELECT COUNT(*) FROM users WHERE id = :u",
        "api_keys": "SELECT COUNT(*) FROM api_keys WHERE user_id = :u",
        "refresh_tokens": "SELECT COUNT(*) FROM refresh_tokens WHERE user_id = :u",
        "idempotency_records": "SELECT COUNT(*) FROM idempotency_records WHERE user_id = :u",
        "conversations": "SELECT COUNT(*) FROM conversations WHERE user_id = :u",
        "documents": "SELECT COUNT(*) FROM documents WHERE owner_id = :u",
        "chunks": "SELECT COUNT(*) FROM chunks WHERE owner_id = :u",
    }
    counts = {t: int(await docs.scalar(sql, u=user_id)) for t, sql in by_user.items()}
    for table in ("messages", "conversation_documents"):
        counts[table] = 0
        for cid in conversation_ids:
            sql = f"SELECT COUNT(*) FROM {table} WHERE conversation_id = :c"
            counts[table] += int(await docs.scalar(sql, c=cid))
    return counts


# -- export -------------------------------------------------------------------------------------
async def test_export_has_own_data_and_nothing_else(
    client: httpx.AsyncClient,
    users: UserFactory,
    conversations: ConversationFactory,
    docs: Docs,
    fake: FakeProvider,
    ctx: AppCtx,
) -> None:
    owner, other = await users.create(), await users.create()
    doc = await docs.ingest(owner, "tulips.txt", TULIPS)
    assert doc["status"] == "ready"
    fake.enqueue("Tulip mania peaked in 1637 [1].")
    r = await client.post(
        "/api/v1/conversations",
        json={
            "first_message": "When was tulip mania?",
            "mode": "grounded",
            "document_ids": [doc["id"]],
        },
        headers=owner.headers,
    )
    assert r.status_code == 201, r.text
    grounded = r.json()["conversation_id"]
    plain = (await conversations.create(owner, "Owner asks about sourdough starters"))[
        "conversation_id"
    ]
    r = await client.post("/api/v1/api-keys", json={"name": "laptop"}, headers=owner.headers)
    key = r.json()["key"]
    await conversations.create(other, "Other user's secret about marmots")

    r = await _export(client, owner.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert (
        r.headers["content-disposition"] == f'attachment; filename="botgpt-export-{owner.id}.json"'
    )
    body = r.json()
    assert body["exported_at"]
    assert body["user"]["id"] == owner.id and body["user"]["email"] == owner.email
    assert set(body["user"]) == {
        "id",
        "email",
        "external_id",
        "display_name",
        "username",
        "full_name",
        "role",
        "is_admin",
        "created_at",
        "last_login_at",
        "consents",
    }
    assert body["consent_history"] == []
    # Conversations exactly as GET /conversations/{id} shows them (messages, citations, usage).
    assert {c["id"] for c in body["conversations"]} == {grounded, plain}
    for exported in body["conversations"]:
        shown = await client.get(f"/api/v1/conversations/{exported['id']}", headers=owner.headers)
        assert exported == shown.json()
    by_id = {c["id"]: c for c in body["conversations"]}
    assert by_id[grounded]["messages"][1]["citations"][0]["document_id"] == doc["id"]
    assert [m["seq"] for m in by_id[plain]["messages"]] == [1, 2]
    assert by_id[plain]["messages"][0]["content"] == "Owner asks about sourdough starters"
    assert by_id[plain]["messages"][1]["usage"]["total_tokens"] > 0
    # Documents' metadata with a working download link.
    [exported_doc] = body["documents"]
    assert exported_doc["id"] == doc["id"] and exported_doc["sha256"] == doc["sha256"]
    assert exported_doc["chunk_count"] == doc["chunk_count"] > 0
    assert (await client.get(exported_doc["download"], headers=owner.headers)).content == TULIPS
    # API keys without secrets; usage as the usage route reports it.
    assert [k["name"] for k in body["api_keys"]] == ["laptop"]
    assert body["api_keys"][0]["prefix"] and "key_hash" not in body["api_keys"][0]
    usage = await client.get(f"{ME}/usage", headers=owner.headers)
    assert body["usage"] == usage.json()
    # No secrets, nobody else's data.
    password_hash = await docs.scalar("SELECT password_hash FROM users WHERE id = :u", u=owner.id)
    assert password_hash and password_hash not in r.text and "password" not in r.text
    assert key not in r.text and digest(key) not in r.text
    assert "marmots" not in r.text and other.id not in r.text


async def test_export_streams_every_conversation_once_in_batches(
    client: httpx.AsyncClient,
    user: AuthedUser,
    conversations: ConversationFactory,
    docs: Docs,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(privacy, "EXPORT_BATCH", 2)
    ids = [
        str((await conversations.create(user, f"Question {i}"))["conversation_id"])
        for i in range(5)
    ]
    # Equal timestamps: the keyset paging must still neither skip nor repeat a row.
    await docs.execute(
        "UPDATE conversations SET created_at = (SELECT MIN(created_at) FROM conversations "
        "WHERE user_id = :u) WHERE user_id = :u",
        u=user.id,
    )
    for name in ("a.txt", "b.txt", "c.txt"):
        r = await docs.upload(user, name, f"Document {name} about rivers.".encode())
        assert r.status_code == 201
    body = (await _export(client, user.headers)).json()
    assert [c["id"] for c in body["conversations"]] == sorted(ids)
    assert sorted(d["filename"] for d in body["documents"]) == ["a.txt", "b.txt", "c.txt"]
    await docs.jobs.join()


async def test_service_key_exports_the_user_it_acts_for(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    headers = {"X-API-Key": admin_key}
    r = await client.post(
        "/api/v1/conversations",
        json={"first_message": "External user's question", "user_id": "ext-export-1"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    by_external = await _export(client, headers, "ext-export-1")
    assert by_external.status_code == 200, by_external.text
    body = by_external.json()
    assert body["user"]["external_id"] == "ext-export-1"
    assert [c["id"] for c in body["conversations"]] == [r.json()["conversation_id"]]
    by_id = await _export(client, headers, body["user"]["id"])
    assert by_id.json()["conversations"] == body["conversations"]


async def test_unknown_user_is_404_and_not_created(
    client: httpx.AsyncClient, admin_key: str, docs: Docs
) -> None:
    headers = {"X-API-Key": admin_key}
    r = await _export(client, headers, "ext-never-seen")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await client.delete(ME, headers=headers, params={"user_id": "ext-never-seen"})
    assert r.status_code == 404
    count = await docs.scalar("SELECT COUNT(*) FROM users WHERE external_id = 'ext-never-seen'")
    assert count == 0


async def test_user_may_not_export_or_erase_another_user(
    client: httpx.AsyncClient, users: UserFactory, conversations: ConversationFactory
) -> None:
    a, b = await users.create(), await users.create()
    await conversations.create(b, "B's words about herons")
    r = await _export(client, a.headers, b.id)
    assert r.status_code == 403 and "herons" not in r.text
    r = await client.delete(ME, headers=a.headers, params={"user_id": b.id})
    assert r.status_code == 403
    assert (await client.get(ME, headers=b.headers)).status_code == 200
    # Naming oneself is allowed.
    assert (await _export(client, a.headers, a.id)).status_code == 200


# -- erasure ------------------------------------------------------------------------------------
async def test_erasure_leaves_nothing_of_the_user_and_keeps_others(
    client: httpx.AsyncClient, users: UserFactory, docs: Docs, fake: FakeProvider
) -> None:
    gone, kept = await users.create(), await users.create()
    doc = await docs.ingest(gone, "tulips.txt", TULIPS)
    kept_doc = await docs.ingest(kept, "kept.txt", b"The other user's notes about lighthouses.")
    fake.enqueue("Tulip mania [1].")
    r = await client.post(
        "/api/v1/conversations",
        json={"first_message": "Tulips?", "mode": "grounded", "document_ids": [doc["id"]]},
        headers={**gone.headers, "Idempotency-Key": "erase-me-1"},
    )
    assert r.status_code == 201, r.text
    conversation_ids = [r.json()["conversation_id"]]
    r = await client.post("/api/v1/api-keys", json={"name": "cli"}, headers=gone.headers)
    key = r.json()["key"]
    assert (await client.get(ME, headers={"X-API-Key": key})).status_code == 200  # now cached
    r = await client.post(
        "/api/v1/conversations", json={"first_message": "Kept"}, headers=kept.headers
    )
    kept_conversation = r.json()["conversation_id"]
    await docs.jobs.join()
    before = await _owned_rows(docs, gone.id, conversation_ids)
    assert all(before[t] > 0 for t in before), before
    index_before = await docs.index_counts()
    blob = docs.uploads / gone.id / doc["id"]
    assert blob.is_file()

    r = await client.delete(ME, headers=gone.headers)
    assert r.status_code == 204, r.text

    after = await _owned_rows(docs, gone.id, conversation_ids)
    assert all(v == 0 for v in after.values()), after
    index_after = await docs.index_counts()
    assert all(index_before[t] - index_after[t] == doc["chunk_count"] for t in index_before)
    assert not blob.exists()
    assert not [p for p in (docs.uploads / gone.id).rglob("*") if p.is_file()]
    # Every credential of the erased user is dead at once.
    assert (await client.get(ME, headers=gone.headers)).status_code == 401
    assert (await client.get(ME, headers={"X-API-Key": key})).status_code == 401
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": gone.refresh_token})
    assert r.status_code == 401
    r = await client.post(
        "/api/v1/auth/login", json={"email": gone.email, "password": gone.password}
    )
    assert r.status_code == 401
    # The other user is untouched.
    r = await client.get(f"/api/v1/conversations/{kept_conversation}", headers=kept.headers)
    assert r.status_code == 200 and len(r.json()["messages"]) == 2
    assert (docs.uploads / kept.id / kept_doc["id"]).is_file()
    chunks = await docs.scalar("SELECT COUNT(*) FROM chunks WHERE owner_id = :u", u=kept.id)
    assert chunks == kept_doc["chunk_count"]
    r = await client.get(f"/api/v1/documents/{kept_doc['id']}/file", headers=kept.headers)
    assert r.status_code == 200


async def test_service_key_erases_an_external_user(
    client: httpx.AsyncClient, admin_key: str, docs: Docs
) -> None:
    headers = {"X-API-Key": admin_key}
    r = await client.post(
        "/api/v1/conversations",
        json={"first_message": "Erase me later", "user_id": "ext-erase-1"},
        headers=headers,
    )
    assert r.status_code == 201
    r = await client.delete(ME, headers=headers, params={"user_id": "ext-erase-1"})
    assert r.status_code == 204, r.text
    assert await docs.scalar("SELECT COUNT(*) FROM users WHERE external_id = 'ext-erase-1'") == 0
    assert (await _export(client, headers, "ext-erase-1")).status_code == 404
    assert (await client.get(ME, headers=headers)).status_code == 200  # the key's own user stays


async def test_last_active_admin_cannot_be_erased(
    client: httpx.AsyncClient, admin_key: str, ctx: AppCtx
) -> None:
    headers = {"X-API-Key": admin_key}
    admin_id = (await client.get(ME, headers=headers)).json()["id"]
    sessions = ctx.app.state.container.sessions
    # Other tests leave admins behind: set them aside so this one is the last.
    async with sessions() as db:
        found = await db.execute(
            select(User.id).where(
                User.is_admin.is_(True), User.is_active.is_(True), User.id != admin_id
            )
        )
        others = list(found.scalars())
        await db.execute(update(User).where(User.id.in_(others)).values(is_active=False))
        await db.commit()
    try:
        r = await client.delete(ME, headers=headers)
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "conflict"
        assert (await client.get(ME, headers=headers)).status_code == 200
    finally:
        async with sessions() as db:
            await db.execute(update(User).where(User.id.in_(others)).values(is_active=True))
            db.add(User(email=f"spare-{uuid.uuid4().hex[:8]}@example.com", is_admin=True))
            await db.commit()
    # With another active admin the same request succeeds.
    r = await client.delete(ME, headers=headers)
    assert r.status_code == 204, r.text
    assert (await client.get(ME, headers=headers)).status_code == 401


async def test_export_and_erasure_are_audited_without_personal_data(
    client: httpx.AsyncClient,
    user: AuthedUser,
    conversations: ConversationFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await conversations.create(user, "Audit me")
    with caplog.at_level(logging.INFO, logger="botgpt.privacy"):
        assert (await _export(client, user.headers)).status_code == 200
        assert (await client.delete(ME, headers=user.headers)).status_code == 204
    records = [r for r in caplog.records if r.name == "botgpt.privacy"]
    assert [r.getMessage() for r in records] == ["personal data exported", "user erased"]
    for record in records:
        fields: dict[str, Any] = record.__dict__
        assert fields["actor_id"] == user.id and fields["subject_id"] == user.id
        assert user.email not in json.dumps(fields, default=str)
        assert "Audit me" not in json.dumps(fields, default=str)
