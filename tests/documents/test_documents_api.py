"""Documents API: upload of every type, limits, types, failures, duplicates, delete, ownership,
crash recovery, search and pagination; on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import httpx
import pytest

from botgpt.exceptions import Conflict, InvalidInput, NotFound
from tests.conftest import AppCtx, AuthedUser, UserFactory
from tests.documents import samples
from tests.documents.conftest import Docs

PDF_PAGES = [
    "Tidal pools host sea anemones and hermit crabs at low tide.",
    "Barnacles close their plates to keep moist when the water retreats.",
]


@pytest.mark.parametrize(
    ("filename", "content_type", "build", "detected", "pages"),
    [
        ("shore.pdf", "application/pdf", lambda: samples.make_pdf(PDF_PAGES), "pdf", 2),
        (
            "report.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            lambda: samples.make_docx(
                "Quarterly revenue", ["Revenue grew 12 percent.", "Costs fell slightly."]
            ),
            "docx",
            1,
        ),
        ("orchard.html", "text/html", lambda: samples.HTML, "html", 1),
        ("volcano.md", "text/markdown", lambda: samples.MARKDOWN, "markdown", 1),
        ("lighthouse.txt", "text/plain", lambda: samples.TEXT, "text", 1),
    ],
)
async def test_upload_each_type_becomes_ready(
    docs: Docs,
    user: AuthedUser,
    filename: str,
    content_type: str,
    build: object,
    detected: str,
    pages: int,
) -> None:
    data = build()  # type: ignore[operator]
    r = await docs.upload(user, filename, data, content_type)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["duplicate"] is False
    assert body["status"] in ("queued", "parsing", "chunking", "embedding", "ready")
    assert body["filename"] == filename and body["detected_type"] == detected
    assert body["size_bytes"] == len(data) and len(body["sha256"]) == 64
    assert body["user_id"] == user.id
    done = await docs.wait(user, body["id"])
    assert done["status"] == "ready", done
    assert done["progress"] == 1.0 and done["error"] is None and done["is_vectorized"]
    assert done["chunk_count"] > 0 and done["pages"] == pages
    assert done["embedding_model"]
    stored = await docs.scalar("SELECT COUNT(*) FROM chunks WHERE document_id = :d", d=body["id"])
    assert stored == done["chunk_count"]


async def test_seed_shapes_form_user_id_and_list_by_user_id(
    docs: Docs, client: httpx.AsyncClient, admin_key: str
) -> None:
    service = {"X-API-Key": admin_key}
    external = f"user-{uuid.uuid4().hex[:8]}"
    r = await docs.upload(
        service, "notes.txt", b"Seed style upload for an external user.", form={"user_id": external}
    )
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["user_id"] != external  # provisioned internal id
    r = await client.get("/api/v1/documents", params={"user_id": external}, headers=service)
    assert r.status_code == 200
    assert [d["id"] for d in r.json()["items"]] == [doc["id"]]
    # The key's own documents are another list.
    r = await client.get("/api/v1/documents", headers=service)
    assert doc["id"] not in [d["id"] for d in r.json()["items"]]
    done = await docs.wait(service, doc["id"], user_id=external)
    assert done["status"] == "ready"


async def test_end_user_cannot_act_for_another_user(
    docs: Docs, user: AuthedUser, users: UserFactory
) -> None:
    other = await users.create()
    r = await docs.upload(user, "a.txt", b"hello there", form={"user_id": other.id})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"


async def test_oversize_is_413_and_nothing_stored(
    docs: Docs, user: AuthedUser, ctx: AppCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = docs.upload_files()
    monkeypatch.setattr(ctx.settings, "max_upload_mb", 0.01)  # 10 KiB
    # Streamed past the limit (Content-Length is within the multipart allowance).
    r = await docs.upload(user, "big.txt", b"word " * 5000)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"
    # Refused from Content-Length alone.
    r = await docs.upload(user, "bigger.txt", b"word " * 40_000)
    assert r.status_code == 413
    count = await docs.scalar("SELECT COUNT(*) FROM documents WHERE owner_id = :o", o=user.id)
    assert count == 0
    assert docs.upload_files() == before
    # Just under the limit is accepted.
    r = await docs.upload(user, "small.txt", b"word " * 2000)
    assert r.status_code == 201, r.text
    await docs.wait(user, r.json()["id"])


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("image.png", samples.PNG),
        ("archive.zip", samples.make_zip()),
        ("disguised.pdf", samples.PNG),  # the name does not decide the type
        ("legacy.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600),
    ],
)
async def test_unsupported_type_is_415(
    docs: Docs, user: AuthedUser, filename: str, data: bytes
) -> None:
    before = docs.upload_files()
    r = await docs.upload(user, filename, data)
    assert r.status_code == 415, r.text
    assert r.json()["error"]["code"] == "unsupported_media_type"
    assert "PDF" in r.json()["error"]["message"]
    assert docs.upload_files() == before


async def test_bad_requests(docs: Docs, client: httpx.AsyncClient, user: AuthedUser) -> None:
    r = await client.post("/api/v1/documents", json={"file": "not multipart"}, headers=user.headers)
    assert r.status_code == 415
    r = await client.post(
        "/api/v1/documents", files={"document": ("a.txt", b"x")}, headers=user.headers
    )
    assert r.status_code == 422 and "`file`" in r.json()["error"]["message"]
    r = await docs.upload(user, "empty.txt", b"")
    assert r.status_code == 422 and "empty" in r.json()["error"]["message"]
    r = await client.post("/api/v1/documents", files={"file": ("a.txt", b"x")})
    assert r.status_code == 401


async def test_filename_is_sanitised(docs: Docs, user: AuthedUser) -> None:
    r = await docs.upload(user, "../../etc/pa<ss>wd|.txt", b"Sanitised file name content.")
    assert r.status_code == 201
    assert r.json()["filename"] == "pa_ss_wd_.txt"
    r = await docs.upload(user, "..", b"Dot only name content here.")
    assert r.json()["filename"] == "document.txt"
    await docs.jobs.join()


@pytest.mark.parametrize(
    ("data", "codes", "words"),
    [
        (
            b"%PDF-1.4\n1 0 obj << /Type /Catalog garbage" + bytes(range(256)) * 4,
            {"corrupt_file"},
            "damaged",
        ),
        (samples.make_pdf(["cut short"])[:150], {"corrupt_file"}, "damaged"),
        (samples.make_encrypted_pdf(["classified"]), {"encrypted_pdf"}, "password"),
        (samples.make_pdf(["", ""]), {"no_extractable_text"}, "OCR"),
        (b"caf\xe9 au lait, latin-1 encoded text", {"undecodable_text"}, "UTF-8"),
    ],
    ids=["garbage-pdf", "truncated-pdf", "encrypted-pdf", "scanned-pdf", "latin1-text"],
)
async def test_unreadable_documents_fail_with_clear_error(
    docs: Docs, user: AuthedUser, data: bytes, codes: set[str], words: str
) -> None:
    r = await docs.upload(user, "broken.pdf" if data.startswith(b"%PDF") else "x.txt", data)
    assert r.status_code == 201, r.text
    done = await docs.wait(user, r.json()["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] in codes
    assert words in done["error"]["message"]
    assert done["chunk_count"] == 0 and not done["is_vectorized"]
    assert (
        await docs.scalar("SELECT COUNT(*) FROM chunks WHERE document_id = :d", d=done["id"]) == 0
    )


async def test_duplicate_upload_returns_existing(
    docs: Docs, user: AuthedUser, users: UserFactory
) -> None:
    data = (
        b"Duplicate detection works on the exact bytes of a file. "
        + uuid.uuid4().bytes.hex().encode()
    )
    first = await docs.upload(user, "one.txt", data)
    assert first.status_code == 201
    again = await docs.upload(user, "renamed.txt", data)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"] and again.json()["duplicate"] is True
    assert again.json()["filename"] == "one.txt"
    count = await docs.scalar("SELECT COUNT(*) FROM documents WHERE owner_id = :o", o=user.id)
    assert count == 1
    # Another owner uploading the same bytes gets a document of their own.
    other = await users.create()
    theirs = await docs.upload(other, "one.txt", data)
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]
    await docs.wait(user, first.json()["id"])
    await docs.wait(other, theirs.json()["id"])


async def test_delete_leaves_nothing_behind(
    docs: Docs, client: httpx.AsyncClient, user: AuthedUser
) -> None:
    done = await docs.ingest(user, "volcano.md", samples.MARKDOWN, "text/markdown")
    assert done["status"] == "ready" and done["chunk_count"] > 0
    await docs.jobs.join()
    doc_id = done["id"]
    blob = docs.uploads / user.id / doc_id
    assert blob.is_file()
    before = await docs.index_counts()
    r = await client.delete(f"/api/v1/documents/{doc_id}", headers=user.headers)
    assert r.status_code == 204
    after = await docs.index_counts()
    assert all(before[t] - after[t] == done["chunk_count"] for t in before), (before, after)
    assert await docs.scalar("SELECT COUNT(*) FROM chunks WHERE document_id = :d", d=doc_id) == 0
    assert await docs.scalar("SELECT COUNT(*) FROM documents WHERE id = :d", d=doc_id) == 0
    assert not blob.exists()
    assert not [p for p in (docs.uploads / user.id).rglob("*") if p.is_file()]
    assert not [p for p in docs.spool.rglob("*") if p.is_file()]
    r = await client.get(f"/api/v1/documents/{doc_id}", headers=user.headers)
    assert r.status_code == 404
    r = await client.delete(f"/api/v1/documents/{doc_id}", headers=user.headers)
    assert r.status_code == 404


async def test_deleting_the_user_removes_documents_and_chunks(docs: Docs, user: AuthedUser) -> None:
    done = await docs.ingest(user, "lighthouse.txt", samples.TEXT)
    assert done["chunk_count"] > 0
    await docs.jobs.join()
    before = await docs.index_counts()
    await docs.execute("DELETE FROM users WHERE id = :u", u=user.id)
    after = await docs.index_counts()
    assert all(before[t] - after[t] == done["chunk_count"] for t in before)
    assert await docs.scalar("SELECT COUNT(*) FROM chunks WHERE owner_id = :u", u=user.id) == 0


async def test_another_users_document_is_404_everywhere(
    docs: Docs, client: httpx.AsyncClient, user: AuthedUser, users: UserFactory
) -> None:
    done = await docs.ingest(user, "mine.txt", b"Private notes about the merger of two firms.")
    intruder = await users.create()
    url = f"/api/v1/documents/{done['id']}"
    assert (await client.get(url, headers=intruder.headers)).status_code == 404
    assert (await client.delete(url, headers=intruder.headers)).status_code == 404
    r = await client.post(
        "/api/v1/search",
        json={"query": "merger", "document_ids": [done["id"]]},
        headers=intruder.headers,
    )
    assert r.status_code == 404
    with pytest.raises(NotFound):
        await docs.scope.check_ready(intruder.id, [done["id"]])
    assert await docs.scope.search(intruder.id, [done["id"]], "merger of two firms", 5) == []
    r = await client.get("/api/v1/documents", headers=intruder.headers)
    assert r.json()["total"] == 0
    # The owner still has it.
    assert (await client.get(url, headers=user.headers)).status_code == 200
    assert await docs.scope.check_ready(user.id, [done["id"]])


async def test_scope_readiness_errors(docs: Docs, user: AuthedUser) -> None:
    ok = await docs.ingest(user, "ok.txt", b"A ready document about glaciers and ice sheets.")
    bad = await docs.ingest(user, "bad.pdf", samples.make_pdf(["", ""]), "application/pdf")
    assert bad["status"] == "failed"
    with pytest.raises(InvalidInput) as failed:
        await docs.scope.check_ready(user.id, [ok["id"], bad["id"]])
    assert failed.value.details["documents"][0]["error_code"] == "no_extractable_text"
    # A document still ingesting (simulated) is a conflict listing its status.
    await docs.execute(
        "UPDATE documents SET status = 'embedding', progress = 0.5 WHERE id = :d", d=ok["id"]
    )
    try:
        with pytest.raises(Conflict) as pending:
            await docs.scope.check_ready(user.id, [ok["id"]])
        entry = pending.value.details["documents"][0]
        assert entry["document_id"] == ok["id"] and entry["status"] == "embedding"
        r = await docs.client.post(
            "/api/v1/search",
            json={"query": "glaciers", "document_ids": [ok["id"]]},
            headers=user.headers,
        )
        assert r.status_code == 409
        assert r.json()["error"]["details"]["documents"][0]["status"] == "embedding"
    finally:
        await docs.execute("UPDATE documents SET status = 'ready' WHERE id = :d", d=ok["id"])
    assert [d.id for d in await docs.scope.check_ready(user.id, [ok["id"]])] == [ok["id"]]


async def test_crash_mid_ingestion_resumes_without_orphans(
    docs: Docs, user: AuthedUser, ctx: AppCtx
) -> None:
    done = await docs.ingest(user, "shore.pdf", samples.make_pdf(PDF_PAGES), "application/pdf")
    expected = done["chunk_count"]
    await docs.jobs.join()
    doc_id = done["id"]
    # Simulate a crash during embedding: status left in progress, some chunks already written
    # (here: the previous run's chunks plus a stray partial one).
    await docs.execute(
        "UPDATE documents SET status = 'embedding', progress = 0.4, chunk_count = 0 WHERE id = :d",
        d=doc_id,
    )
    async with ctx.app.state.container.engine.begin() as conn:
        from botgpt.retrieval.stores import ChunkRecord

        await docs.ingestor.index(conn).add(
            [
                ChunkRecord(
                    id=str(uuid.uuid4()),
                    document_id=doc_id,
                    owner_id=user.id,
                    ordinal=99,
                    text="partial chunk of an interrupted run",
                    embedding=[1.0] + [0.0] * (docs.ingestor.embedder.dimension - 1),
                    char_start=0,
                    char_end=10,
                    page=1,
                )
            ],
            embedding_model="partial",
        )
    stale = await docs.scalar("SELECT COUNT(*) FROM chunks WHERE document_id = :d", d=doc_id)
    assert stale == expected + 1
    before = await docs.index_counts()

    resumed = await docs.ingestor.resume_interrupted()
    assert doc_id in resumed
    again = await docs.wait(user, doc_id)
    assert again["status"] == "ready" and again["chunk_count"] == expected
    await docs.jobs.join()
    ordinals = await docs.scalar(
        "SELECT COUNT(DISTINCT ordinal) FROM chunks WHERE document_id = :d", d=doc_id
    )
    total = await docs.scalar("SELECT COUNT(*) FROM chunks WHERE document_id = :d", d=doc_id)
    assert total == ordinals == expected
    after = await docs.index_counts()
    assert all(before[t] - after[t] == 1 for t in before), (before, after)  # the stray chunk
    # Nothing in progress is left; a second resume finds nothing to do.
    assert await docs.ingestor.resume_interrupted() == []


async def test_repeatedly_interrupted_document_fails(docs: Docs, user: AuthedUser) -> None:
    done = await docs.ingest(user, "loop.txt", b"A document whose ingestion keeps crashing.")
    await docs.execute(
        "UPDATE documents SET status = 'parsing', attempts = 3 WHERE id = :d", d=done["id"]
    )
    await docs.ingestor.resume_interrupted()
    failed = await docs.wait(user, done["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "ingestion_interrupted"
    assert (
        await docs.scalar("SELECT COUNT(*) FROM chunks WHERE document_id = :d", d=done["id"]) == 0
    )


SEARCH_DOC = b"""# Household handbook

## Gardening

Tomatoes need at least six hours of direct sunlight and deep watering twice a week.

## Plumbing

To stop a dripping tap, close the valve under the sink and replace the worn rubber washer.

## Cooking

Sourdough bread rises slowly because wild yeast ferments the dough over many hours.
"""


@pytest.mark.parametrize("mode", ["hybrid", "keyword", "vector"])
async def test_search_ranks_known_passage_first_and_stays_in_owner(
    docs: Docs, client: httpx.AsyncClient, users: UserFactory, mode: str
) -> None:
    owner = await users.create()
    other = await users.create()
    mine = await docs.ingest(owner, "handbook.md", SEARCH_DOC, "text/markdown")
    theirs = await docs.ingest(
        other, "leaks.md", b"# Leaks\n\nA dripping tap wastes water: replace the washer.\n"
    )
    assert mine["status"] == theirs["status"] == "ready"
    r = await client.post(
        "/api/v1/search",
        json={"query": "how do I fix a dripping tap washer", "k": 5, "mode": mode},
        headers=owner.headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == mode
    results = body["results"]
    assert results, body
    top = results[0]
    assert "dripping tap" in top["text"]
    assert top["document_id"] == mine["id"] and top["filename"] == "handbook.md"
    assert top["rank"] == 1 and top["page"] == 1
    assert top["char_end"] > top["char_start"] >= 0
    assert SEARCH_DOC.decode()[top["char_start"] : top["char_end"]] == top["text"]
    assert {p["document_id"] for p in results} == {mine["id"]}
    # Scoped to a document id list: same result.
    r = await client.post(
        "/api/v1/search",
        json={"query": "dripping tap", "document_ids": [mine["id"]], "mode": mode},
        headers=owner.headers,
    )
    assert {p["document_id"] for p in r.json()["results"]} == {mine["id"]}


async def test_search_validation(client: httpx.AsyncClient, user: AuthedUser) -> None:
    for body in ({"query": "  "}, {"query": "x", "k": 0}, {"query": "x", "mode": "fuzzy"}, {}):
        r = await client.post("/api/v1/search", json=body, headers=user.headers)
        assert r.status_code == 422, body
    r = await client.post("/api/v1/search", json={"query": "anything"}, headers=user.headers)
    assert r.status_code == 200 and r.json()["results"] == []
    r = await client.post("/api/v1/search", json={"query": "anything"})
    assert r.status_code == 401


async def test_scope_search_applies_relevance_floor(docs: Docs, user: AuthedUser) -> None:
    done = await docs.ingest(user, "handbook.md", SEARCH_DOC, "text/markdown")
    ids = [done["id"]]
    hits = await docs.scope.search(user.id, ids, "Why does sourdough bread rise slowly?", 3)
    assert hits and "Sourdough" in hits[0].text
    assert hits[0].vector_score is not None and hits[0].vector_score >= 0.25
    assert await docs.scope.search(user.id, ids, "Who won the 1998 football world cup?", 3) == []
    assert await docs.scope.search(user.id, [], "sourdough", 3) == []


async def test_list_is_paginated_newest_first(
    docs: Docs, client: httpx.AsyncClient, user: AuthedUser
) -> None:
    ids = []
    for i in range(3):
        r = await docs.upload(user, f"n{i}.txt", f"Numbered note {i} about pagination.".encode())
        assert r.status_code == 201
        ids.append(r.json()["id"])
    r = await client.get("/api/v1/documents", params={"limit": 2}, headers=user.headers)
    page1 = r.json()
    assert page1["total"] == 3 and page1["pages"] == 2 and page1["page"] == 1
    r = await client.get("/api/v1/documents", params={"limit": 2, "page": 2}, headers=user.headers)
    page2 = r.json()
    listed = [d["id"] for d in page1["items"] + page2["items"]]
    assert listed == list(reversed(ids))
    r = await client.get("/api/v1/documents", params={"limit": 0}, headers=user.headers)
    assert r.status_code == 422
    for doc_id in ids:
        await docs.wait(user, doc_id)


async def test_reupload_retries_a_transient_failure(docs: Docs, user: AuthedUser) -> None:
    data = b"A document whose first ingestion hit a passing failure. " + uuid.uuid4().hex.encode()
    done = await docs.ingest(user, "retry.txt", data)
    await docs.execute(
        "UPDATE documents SET status = 'failed', error_code = 'embedding_failed', "
        "error_message = 'down', chunk_count = 0 WHERE id = :d",
        d=done["id"],
    )
    await docs.execute("DELETE FROM chunks WHERE document_id = :d", d=done["id"])
    r = await docs.upload(user, "retry.txt", data)
    assert r.status_code == 200 and r.json()["duplicate"] is True
    assert r.json()["status"] == "queued" and r.json()["error"] is None
    again = await docs.wait(user, done["id"])
    assert again["status"] == "ready" and again["chunk_count"] == done["chunk_count"]
    # A deterministic failure (the same bytes fail the same way) is returned as it is.
    bad = await docs.ingest(user, "scan.pdf", samples.make_pdf(["", "", ""]), "application/pdf")
    r = await docs.upload(user, "scan.pdf", samples.make_pdf(["", "", ""]))
    assert r.status_code == 200 and r.json()["status"] == "failed"
    assert r.json()["id"] == bad["id"]


async def test_conversation_document_links(docs: Docs, user: AuthedUser, ctx: AppCtx) -> None:
    from botgpt.conversations.links import attach_documents, attached_document_ids

    a = await docs.ingest(user, "link-a.txt", b"Linked document A about rivers.")
    b = await docs.ingest(user, "link-b.txt", b"Linked document B about mountains.")
    r = await docs.client.post(
        "/api/v1/conversations", json={"first_message": "hi"}, headers=user.headers
    )
    conv = r.json()["conversation_id"]
    runner = ctx.app.state.container.sql
    await runner.run(lambda c: attach_documents(c, conv, [a["id"], b["id"], a["id"]]))
    linked = await runner.run(lambda c: attached_document_ids(c, conv))
    assert sorted(linked) == sorted([a["id"], b["id"]])
    await runner.run(lambda c: attach_documents(c, conv, [b["id"]]))
    assert await runner.run(lambda c: attached_document_ids(c, conv)) == [b["id"]]
    # Deleting the document unlinks it.
    r = await docs.client.delete(f"/api/v1/documents/{b['id']}", headers=user.headers)
    assert r.status_code == 204
    assert await runner.run(lambda c: attached_document_ids(c, conv)) == []
