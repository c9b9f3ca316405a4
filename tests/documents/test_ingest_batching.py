"""Ingestion with shared model calls: each document gets exactly its own vectors; progress and
delete still work while chunks wait for the model (both backends)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from sqlalchemy import text

from botgpt.documents.chunking import embedding_input
from botgpt.retrieval.embedders import Embedder, HashEmbedder, Vectors
from tests.conftest import AuthedUser
from tests.documents.conftest import Docs


class Gated(HashEmbedder):
    """HashEmbedder (the index's 384 dimensions) whose calls are recorded and wait for a gate."""

    def __init__(self) -> None:
        super().__init__(dimension=384)
        self.calls: list[list[str]] = []
        self.gate = asyncio.Semaphore(0)
        self.open = False

    async def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(list(texts))
        if not self.open:
            await self.gate.acquire()
        return self.embed_sync(texts)

    def release_all(self) -> None:
        self.open = True
        for _ in range(1000):
            self.gate.release()


@pytest.fixture
async def gated(docs: Docs) -> AsyncIterator[Gated]:
    """The ingestion batcher's model replaced by a gated one for the test."""
    batcher = docs.ingestor.batcher
    original: Embedder = batcher.embedder
    fake = Gated()
    batcher.embedder = fake
    try:
        yield fake
    finally:
        fake.release_all()
        await docs.jobs.join()
        batcher.embedder = original


def abstract(n: int) -> bytes:
    """A one-chunk document whose words no other document uses."""
    words = " ".join(f"w{n}x{i}" for i in range(30))
    return f"Title {n}\n\nAbstract number {n}: {words}.".encode()


async def test_concurrent_documents_share_model_calls_and_keep_their_vectors(
    docs: Docs, user: AuthedUser, gated: Gated
) -> None:
    ids = []
    for n in range(8):
        r = await docs.upload(user, f"abstract-{n}.txt", abstract(n), "text/plain")
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    await asyncio.sleep(0.3)  # the first document's call waits; the others gather behind it
    gated.release_all()
    for doc_id in ids:
        done = await docs.wait(user, doc_id)
        assert done["status"] == "ready" and done["chunk_count"] == 1 and done["progress"] == 1.0
    # Fewer model calls than documents, and one call held the chunks of several documents.
    assert len(gated.calls) < len(ids)
    assert max(len(call) for call in gated.calls) >= 3
    async with docs.ctx.app.state.container.engine.connect() as conn:
        index = docs.ingestor.index(conn)
        for doc_id in ids:
            rows = (
                await conn.execute(
                    text("SELECT id, heading, text FROM chunks WHERE document_id = :d"),
                    {"d": doc_id},
                )
            ).all()
            assert len(rows) == 1
            chunk_id, heading, body = rows[0]
            # Its own text's vector finds exactly its own chunk, as an identical vector.
            vector = gated.embed_sync([embedding_input(heading, body)])[0]
            hits = await index.vector_search(vector, user.id, None, 2)
            assert hits[0].chunk_id == chunk_id and hits[0].document_id == doc_id
            assert hits[0].score == pytest.approx(1.0, abs=1e-3)
            assert hits[1].score < 0.5


def long_text(paragraphs: int = 60) -> bytes:
    """Many chunks: more than one embedding request of `embedding_batch_size` (16)."""
    body = "\n\n".join(
        " ".join(f"p{p}word{i} is part of section {p}." for i in range(40))
        for p in range(paragraphs)
    )
    return f"Manual\n\n{body}".encode()


async def test_progress_and_delete_while_chunks_wait_for_the_model(
    docs: Docs, user: AuthedUser, gated: Gated
) -> None:
    r = await docs.upload(user, "manual.txt", long_text(), "text/plain")
    assert r.status_code == 201, r.text
    manual = r.json()["id"]
    r = await docs.upload(user, "short.txt", abstract(99), "text/plain")
    short = r.json()["id"]

    async def status(doc_id: str) -> dict[str, Any]:
        body: dict[str, Any] = (
            await docs.client.get(f"/api/v1/documents/{doc_id}", headers=user.headers)
        ).json()
        return body

    async def until(doc_id: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        for _ in range(400):
            body = await status(doc_id)
            if check(body):
                return body
            await asyncio.sleep(0.05)
        raise AssertionError(f"{doc_id} never got there: {body}")

    # The long document shows it is embedding before any vector came back.
    first = await until(manual, lambda d: d["status"] == "embedding")
    assert first["progress"] == pytest.approx(0.15)
    # The short one waits for the model; deleting it now leaves nothing behind.
    assert (await status(short))["status"] in ("queued", "parsing")
    r = await docs.client.delete(f"/api/v1/documents/{short}", headers=user.headers)
    assert r.status_code == 204
    # Two model calls come back (the short document's chunk may have had one of its own):
    # the progress moves and the document is still embedding.
    gated.gate.release()
    gated.gate.release()
    moved = await until(manual, lambda d: d["progress"] > 0.15)
    assert moved["status"] == "embedding" and moved["progress"] < 0.98
    gated.release_all()
    done = await docs.wait(user, manual)
    assert done["status"] == "ready" and done["progress"] == 1.0 and done["chunk_count"] > 16
    stored = await docs.scalar("SELECT COUNT(*) FROM chunks WHERE document_id = :d", d=manual)
    assert stored == done["chunk_count"]
    await docs.jobs.join()
    assert await docs.scalar("SELECT COUNT(*) FROM chunks WHERE document_id = :d", d=short) == 0
    assert await docs.scalar("SELECT COUNT(*) FROM documents WHERE id = :d", d=short) == 0
    # Every chunk of the long document went to the model exactly once.
    sent = [text for call in gated.calls for text in call]
    async with docs.ctx.app.state.container.engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT heading, text FROM chunks WHERE document_id = :d"), {"d": manual}
            )
        ).all()
    assert [sent.count(embedding_input(heading, body)) for heading, body in rows] == [1] * len(rows)
