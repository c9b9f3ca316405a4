"""Hybrid search takes a second pooled connection only when one is spare: with the pool nearly
exhausted it still answers on one connection instead of waiting for itself."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from botgpt.db import has_spare_connection, make_engine
from tests.conftest import AuthedUser
from tests.documents.conftest import Docs


async def test_spare_connection_follows_the_pool(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}")
    size = engine.sync_engine.pool.size()  # type: ignore[attr-defined]
    try:
        async with AsyncExitStack() as held:
            conns = [await held.enter_async_context(engine.connect()) for _ in range(size - 1)]
            assert has_spare_connection(engine)  # one never opened yet
            last = await held.enter_async_context(engine.connect())
            assert not has_spare_connection(engine)
            await last.close()
            assert has_spare_connection(engine)  # back in the pool
            assert len(conns) == size - 1
    finally:
        await engine.dispose()


async def _hold_all_but_one(engine: AsyncEngine, held: AsyncExitStack) -> None:
    size = engine.sync_engine.pool.size()  # type: ignore[attr-defined]
    while engine.sync_engine.pool.checkedout() < size - 1:  # type: ignore[attr-defined]
        conn = await held.enter_async_context(engine.connect())
        await conn.execute(text("SELECT 1"))


async def test_hybrid_search_with_one_connection_left(docs: Docs, user: AuthedUser) -> None:
    done = await docs.ingest(user, "tides.txt", b"The moon's pull on the oceans causes tides.")
    engine: AsyncEngine = docs.scope.engine
    baseline = await docs.scope.search(user.id, [done["id"]], "what causes tides", 3)
    assert baseline and baseline[0].document_id == done["id"]
    async with AsyncExitStack() as held:
        await _hold_all_but_one(engine, held)
        assert has_spare_connection(engine)  # exactly one: the search's first
        # Were it to wait for a second connection, this would hang until the pool timeout.
        hits = await asyncio.wait_for(
            docs.scope.search(user.id, [done["id"]], "what causes tides", 3), timeout=10
        )
    assert [h.chunk_id for h in hits] == [h.chunk_id for h in baseline]
