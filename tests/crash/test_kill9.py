"""Crash tests (issue 8): kill -9 a real server process mid-stream and mid-ingestion, restart.

Nothing may be lost or stuck: the interrupted reply ends `failed` / `interrupted` with its
partial text (and can be regenerated), the interrupted document ends ready or failed with
no orphan chunks. Each test runs `botgpt serve` as a subprocess on a free 127.0.0.1 port,
on a fresh SQLite data folder or a fresh PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from botgpt.db import sqlite_connect
from tests.api.test_streaming import SSEReader
from tests.conftest import BACKENDS, _drop_pg_database, _fresh_pg_database
from tests.crash.server import ServerProcess
from tests.fakes.openai_server import FakeOpenAIServer, Reply, Step, openai_chunk, openai_stream

PIECES = [f"word{i} " for i in range(300)]  # 30 s at 0.1 s a token: far longer than the test


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database URL for the server process."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'botgpt.db'}"
        return
    url, name = await _fresh_pg_database()
    yield url
    await _drop_pg_database(name)


def slow_stream() -> Reply:
    steps: list[Step] = [openai_chunk(role="assistant", content="")]
    for piece in PIECES:
        steps += [0.1, openai_chunk(piece)]
    return Reply.sse([*steps, openai_chunk(finish_reason="stop"), b"data: [DONE]\n\n"])


async def until(check: Any, seconds: float) -> Any:
    """Poll `check()` (async) until it returns something truthy."""
    deadline = time.monotonic() + seconds
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.1)


async def test_kill9_during_a_stream_then_restart(database: str, tmp_path: Path) -> None:
    fresh = Reply.sse(openai_stream(["Fresh", " answer"]))
    async with FakeOpenAIServer(default_reply=lambda _req: fresh) as upstream:
        upstream.replies.append(slow_stream())
        server = ServerProcess(
            tmp_path,
            database,
            {
                "BOTGPT_LLM_PROVIDER": "openai",
                "BOTGPT_LLM_BASE_URL": upstream.base_url,
                "BOTGPT_LLM_API_KEY": "sk-test",
                "BOTGPT_LLM_MODEL": "gpt-test",
                "BOTGPT_STREAM_LEASE_SECONDS": "2",
                "BOTGPT_STREAM_FLUSH_SECONDS": "0.2",
            },
        )
        await server.start()
        try:
            async with (
                server.client() as client,
                client.stream(
                    "POST",
                    "/api/v1/conversations?stream=true",
                    json={"first_message": "Tell me a long story"},
                ) as r,
            ):
                assert r.status_code == 201
                reader = SSEReader(r)  # kept: dropping it would close the stream
                frames = await reader.read(stop_after=11)
                await asyncio.sleep(1.0)  # the batched progress write has run since
                server.kill9()
            ids = frames[0]["data"]
            seen = "".join(f["data"]["text"] for f in frames if f["event"] == "delta")
            assert seen
            cid, mid = ids["conversation_id"], ids["assistant_message_id"]

            await server.start()
            async with server.client() as client:

                async def settled() -> dict[str, Any] | None:
                    r = await client.get(f"/api/v1/conversations/{cid}")
                    assert r.status_code == 200
                    reply = r.json()["messages"][-1]
                    return None if reply["status"] in ("pending", "streaming") else r.json()

                conversation = await until(settled, 30)
                assert conversation is not None, "the interrupted reply stayed generating"
                question, reply = conversation["messages"]
                assert question["content"] == "Tell me a long story"
                assert question["status"] == "complete"
                assert reply["id"] == mid
                assert reply["status"] == "failed"
                assert reply["error"]["code"] == "interrupted"
                assert reply["content"].startswith(seen)  # the partial text is kept
                assert "".join(PIECES).startswith(reply["content"])

                r = await client.get(f"/api/v1/conversations/{cid}/messages/{mid}/stream")
                assert r.status_code == 200
                assert "event: error" in r.text and "interrupted" in r.text

                r = await client.post(f"/api/v1/conversations/{cid}/messages/{mid}/regenerate")
                assert r.status_code == 201, r.text
                assert r.json()["assistant_message"]["status"] == "complete"
                assert r.json()["assistant_message"]["content"] == "Fresh answer"
        finally:
            server.stop()


def big_text() -> bytes:
    """A plain-text document of some fifty chunks: embedded in small batches, it takes
    the local embedder a few seconds."""
    paragraphs = [
        f"Section {i}. The maintenance schedule for unit {i} requires inspection of the "
        f"valves, the pumps and the filters every {i % 12 + 1} weeks, with a report filed "
        f"to the site manager and a copy kept in the archive for audit number {i * 7}."
        for i in range(250)
    ]
    return "\n\n".join(paragraphs).encode()


async def _chunk_counts(database: str, document_id: str) -> dict[str, int]:
    if database.startswith("sqlite"):
        conn = sqlite_connect(database.split("///", 1)[1])
        try:

            def one(sql: str) -> int:
                return int(conn.execute(sql, (document_id,)).fetchone()[0])

            orphans = conn.execute(
                "SELECT count(*) FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)"
            ).fetchone()[0]
            vectors = conn.execute(
                "SELECT count(*) FROM chunks_vec WHERE rowid NOT IN (SELECT seq FROM chunks)"
            ).fetchone()[0]
            return {
                "chunks": one("SELECT count(*) FROM chunks WHERE document_id = ?"),
                "ordinals": one("SELECT count(DISTINCT ordinal) FROM chunks WHERE document_id = ?"),
                "orphans": int(orphans),
                "orphan_vectors": int(vectors),
            }
        finally:
            conn.close()
    pg = await asyncpg.connect(database.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return {
            "chunks": await pg.fetchval(
                "SELECT count(*) FROM chunks WHERE document_id = $1", document_id
            ),
            "ordinals": await pg.fetchval(
                "SELECT count(DISTINCT ordinal) FROM chunks WHERE document_id = $1", document_id
            ),
            "orphans": await pg.fetchval(
                "SELECT count(*) FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)"
            ),
            "orphan_vectors": 0,
        }
    finally:
        await pg.close()


async def test_kill9_during_ingestion_then_restart(database: str, tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path, database, {"BOTGPT_LLM_PROVIDER": "fake", "BOTGPT_EMBEDDING_BATCH_SIZE": "4"}
    )
    await server.start()
    try:
        async with server.client() as client:
            r = await client.post(
                "/api/v1/documents", files={"file": ("manual.txt", big_text(), "text/plain")}
            )
            assert r.status_code in (201, 202), r.text
            doc_id = r.json()["id"]

            async def embedding() -> dict[str, Any] | None:
                doc: dict[str, Any] = (await client.get(f"/api/v1/documents/{doc_id}")).json()
                stored = doc["status"] == "embedding" and doc["progress"] > 0.16
                return doc if stored or doc["status"] in ("ready", "failed") else None

            doc = await until(embedding, 120)
            assert doc is not None and doc["status"] == "embedding", doc  # killed mid-way
            server.kill9()  # with some batches of chunks stored

        await server.start()
        async with server.client() as client:

            async def finished() -> dict[str, Any] | None:
                doc: dict[str, Any] = (await client.get(f"/api/v1/documents/{doc_id}")).json()
                return doc if doc["status"] in ("ready", "failed") else None

            doc = await until(finished, 300)
            assert doc is not None, "the interrupted document stayed in progress"
            counts = await _chunk_counts(database, doc_id)
            assert counts["orphans"] == 0 and counts["orphan_vectors"] == 0
            if doc["status"] == "ready":  # resumed: every chunk once
                assert doc["chunk_count"] > 0
                assert counts["chunks"] == counts["ordinals"] == doc["chunk_count"]
                r = await client.post(
                    "/api/v1/search", json={"query": "valves inspection unit 42", "k": 3}
                )
                assert r.status_code == 200 and r.json()["results"]
            else:  # failed cleanly: a reason and nothing left behind
                assert doc["error"] or doc.get("error_code"), doc
                assert counts["chunks"] == 0
    finally:
        server.stop()
