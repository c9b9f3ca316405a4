"""Fixtures for the chunk index: a connection on SQLite and on PostgreSQL (pgvector).

Each test runs inside one transaction that is rolled back, so tests are isolated without
recreating tables. PostgreSQL tests are skipped only when BOTGPT_TEST_PG_URL is set empty or
the server is unreachable.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from botgpt.db import make_engine
from botgpt.retrieval.stores import ddl_statements

PG_URL = os.environ.get(
    "BOTGPT_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:55432/botgpt_test"
)


async def _create_pg_database() -> tuple[str, str] | None:
    name = f"botgpt_retrieval_{uuid.uuid4().hex[:10]}"
    try:
        conn = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg://", "postgresql://"))
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_URL.rpartition("/")[0] + "/" + name, name


@pytest.fixture(scope="session")
async def pg_engine() -> AsyncIterator[AsyncEngine | None]:
    """A fresh PostgreSQL database with the chunk DDL, or None when PG is unavailable."""
    created = await _create_pg_database() if PG_URL else None
    if created is None:
        yield None
        return
    url, name = created
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        for statement in ddl_statements("postgresql", 384):
            await conn.execute(text(statement))
    yield engine
    await engine.dispose()
    admin = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def db(
    request: pytest.FixtureRequest, tmp_path: Path, pg_engine: AsyncEngine | None
) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that is rolled back after the test."""
    if request.param == "postgres":
        if pg_engine is None:
            pytest.skip("PostgreSQL not reachable (BOTGPT_TEST_PG_URL)")
        engine = pg_engine
    else:
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'chunks.db'}")
        async with engine.begin() as conn:
            for statement in ddl_statements("sqlite", 384):
                await conn.execute(text(statement))
    try:
        async with engine.connect() as conn:
            transaction = await conn.begin()
            yield conn
            await transaction.rollback()
    finally:
        if engine is not pg_engine:
            await engine.dispose()
