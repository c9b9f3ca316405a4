"""Migration 0012 on SQLite: an index written with float vectors and an owner-less FTS5 table
(the layout before compact vectors) stays searchable after the upgrade, and back."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
from alembic import command
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from botgpt import migrate
from botgpt.db import make_engine
from botgpt.retrieval.sqlite_store import SqliteChunkIndex

DIM = 384
# The layout migrations 0003..0011 created before compact vectors.
OLD_VEC = """CREATE VIRTUAL TABLE chunks_vec USING vec0(
    owner_id TEXT PARTITION KEY, document_id TEXT, embedding FLOAT[384] distance_metric=cosine)"""
OLD_FTS = """CREATE VIRTUAL TABLE chunks_fts USING fts5(heading, text, content='',
    contentless_delete=1, tokenize='porter unicode61 remove_diacritics 2')"""
WORDS = ["mitochondria", "photosynthesis", "revolution", "transformer", "vitamin"]


async def _write_old_index(
    conn: AsyncConnection, owners: list[str], vectors: np.ndarray
) -> list[tuple[str, str, str]]:
    """Old-layout rows: (chunk id, owner, word) per vector, owners taking turns."""
    await conn.execute(text("DROP TABLE chunks_vec"))
    await conn.execute(text("DROP TABLE chunks_fts"))
    await conn.execute(text(OLD_VEC))
    await conn.execute(text(OLD_FTS))
    await conn.execute(text("PRAGMA foreign_keys=OFF"))
    rows = []
    for seq, vector in enumerate(vectors, start=1):
        owner, word = owners[seq % len(owners)], WORDS[seq % len(WORDS)]
        chunk_id, document_id = str(uuid.uuid4()), f"doc-{owner}"
        await conn.execute(
            text(
                "INSERT OR IGNORE INTO documents (id, owner_id, filename, detected_type, "
                "size_bytes, sha256, storage_key, status, progress, chunk_count, attempts, "
                "created_at, updated_at) VALUES (:d, :o, 'f.txt', 'txt', 1, :d, :d, 'ready', "
                "1, 0, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"d": document_id, "o": owner},
        )
        body = f"A passage about {word} number {seq}."
        await conn.execute(
            text(
                "INSERT INTO chunks (id, seq, document_id, owner_id, ordinal, text, char_start, "
                "char_end, embedding_model) VALUES (:id, :seq, :d, :o, :seq, :t, 0, 10, 'm')"
            ),
            {"id": chunk_id, "seq": seq, "d": document_id, "o": owner, "t": body},
        )
        await conn.execute(
            text(
                "INSERT INTO chunks_vec (rowid, owner_id, document_id, embedding) "
                "VALUES (:seq, :o, :d, :v)"
            ),
            {"seq": seq, "o": owner, "d": document_id, "v": vector.tobytes()},
        )
        await conn.execute(
            text("INSERT INTO chunks_fts (rowid, heading, text) VALUES (:seq, '', :t)"),
            {"seq": seq, "t": body},
        )
        rows.append((chunk_id, owner, word))
    return rows


async def test_upgrade_keeps_an_old_index_searchable(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    await migrate.upgrade(engine, "0011_support")
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(300, DIM))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    owners = [str(uuid.uuid4()) for _ in range(3)]
    async with engine.begin() as conn:
        rows = await _write_old_index(conn, owners, vectors)
    await migrate.upgrade(engine)
    async with engine.connect() as conn:
        schema = (await conn.execute(text("SELECT sql FROM sqlite_master"))).scalars().all()
        assert any("+vector" in (s or "") for s in schema)
        index = SqliteChunkIndex(conn)
        assert await index.table_counts() == dict.fromkeys(
            ("chunks", "chunks_vec", "chunks_fts"), 300
        )
        for i in (0, 17, 299):
            owner = rows[i][1]
            hits = await index.vector_search(vectors[i], owner, None, 5)
            assert hits[0].chunk_id == rows[i][0]
            assert abs(hits[0].score - 1.0) < 1e-5
            assert {h.owner_id for h in hits} == {owner}
            found = await index.keyword_search(rows[i][2], owner, None, 200)
            expected = {r[0] for r in rows if r[1] == owner and r[2] == rows[i][2]}
            assert {h.chunk_id for h in found} == expected
        # The delete triggers still clear every table.
        assert await index.delete_document(f"doc-{owners[0]}") == 100
        assert await index.table_counts() == dict.fromkeys(
            ("chunks", "chunks_vec", "chunks_fts"), 200
        )
        await conn.rollback()
    await _downgrade(engine)
    async with engine.connect() as conn:
        schema = (await conn.execute(text("SELECT sql FROM sqlite_master"))).scalars().all()
        assert any("FLOAT[384]" in (s or "") for s in schema)
        nearest = await conn.execute(
            text(
                "SELECT c.id FROM chunks_vec v JOIN chunks c ON c.seq = v.rowid "
                "WHERE v.embedding MATCH :q AND k = 1"
            ),
            {"q": vectors[42].tobytes()},
        )
        assert nearest.scalar_one() == rows[42][0]
    await engine.dispose()


async def _downgrade(engine: AsyncEngine) -> None:
    def run(conn: Connection) -> None:
        command.downgrade(migrate.alembic_config(conn), "0011_support")

    async with engine.begin() as conn:
        await conn.run_sync(run)
