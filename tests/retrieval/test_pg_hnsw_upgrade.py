"""Migration 0014 on PostgreSQL: an HNSW index built with 0013's graph parameters is rebuilt
with the current ones, searches find the same chunks across the swap, and back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from alembic import command
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from botgpt import migrate
from botgpt.db import make_engine
from botgpt.retrieval.pg_store import (
    HNSW_EF_CONSTRUCTION,
    HNSW_INDEX,
    HNSW_M,
    PostgresChunkIndex,
    hnsw_index_ddl,
)
from botgpt.retrieval.stores import chunk_index_for
from tests.conftest import backend_database
from tests.retrieval.test_pg_scale import _add_vectors

DIM = 384


async def test_0014_rebuilds_the_graph_and_search_still_finds(tmp_path: Path) -> None:
    async with backend_database("postgres", tmp_path) as url:
        engine = make_engine(url)
        try:
            await _check_upgrade_and_back(engine)
        finally:
            await engine.dispose()


async def _check_upgrade_and_back(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine, "0013_pgscale_chunk_search")
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(300, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    async with engine.begin() as conn:
        # The graph 0013 built on databases that existed before 0014.
        await conn.execute(text(f"DROP INDEX {HNSW_INDEX}"))
        await conn.execute(text(hnsw_index_ddl(DIM, m=16, ef_construction=64)))
        # Chunks without their user and document rows: only the vectors matter here.
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        index = chunk_index_for(conn)
        assert isinstance(index, PostgresChunkIndex)
        ids = await _add_vectors(index, "o1", vectors)

    async def options_and_nearest() -> tuple[list[str], str]:
        async with engine.connect() as conn:
            found = await conn.execute(
                text("SELECT reloptions FROM pg_class WHERE relname = :n"), {"n": HNSW_INDEX}
            )
            # exact_scan_rows=0: the HNSW path even for this small table.
            index = chunk_index_for(conn, exact_scan_rows=0)
            hits = await index.vector_search(vectors[42], None, None, 3)
            return list(found.scalar_one()), hits[0].chunk_id

    assert await options_and_nearest() == (["m=16", "ef_construction=64"], ids[42])
    await migrate.upgrade(engine)
    expected = [f"m={HNSW_M}", f"ef_construction={HNSW_EF_CONSTRUCTION}"]
    assert await options_and_nearest() == (expected, ids[42])

    def down(conn: Connection) -> None:
        command.downgrade(migrate.alembic_config(conn), "0013_pgscale_chunk_search")

    async with engine.begin() as conn:
        await conn.run_sync(down)
    assert await options_and_nearest() == (["m=16", "ef_construction=64"], ids[42])
