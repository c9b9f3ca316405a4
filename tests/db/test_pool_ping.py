"""PostgreSQL pool: a connection idle for a while is pinged before use, a dead one replaced."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text

from botgpt import db
from tests.conftest import BACKENDS, PG_URL

pytestmark = pytest.mark.skipif("postgres" not in BACKENDS, reason="PostgreSQL only")


async def _kill_backend(pid: int) -> None:
    conn = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


async def test_an_idle_connection_killed_by_the_server_is_replaced_before_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", 0.0)  # every reuse counts as idle
    engine = db.make_engine(PG_URL, pool_size=1)
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await _kill_backend(pid)
        async with engine.connect() as conn:
            again = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert again != pid
    finally:
        await engine.dispose()


async def test_a_connection_used_a_moment_ago_is_not_pinged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", 3600.0)
    engine = db.make_engine(PG_URL, pool_size=1)
    sent: list[str] = []
    original = asyncpg.connection.Connection.execute

    async def execute(self: asyncpg.Connection, query: str, *args: object, **kw: object) -> str:
        sent.append(query)
        return await original(self, query, *args, **kw)  # type: ignore[arg-type]

    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        monkeypatch.setattr(asyncpg.connection.Connection, "execute", execute)
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        # Only the statement's own transaction; a ping would add a BEGIN/ROLLBACK of its own.
        assert sent == ["BEGIN;", "ROLLBACK;"], sent
    finally:
        await engine.dispose()
