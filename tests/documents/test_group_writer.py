"""Group commits of index writes: shared transactions, refusals and failures kept per caller."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from botgpt.documents.group_writer import GroupWriter, Write
from tests.conftest import AppCtx


class Refused(Exception):
    """The write found it must not happen (raised before writing anything)."""


@pytest.fixture
async def table(ctx: AppCtx) -> AsyncIterator[tuple[AsyncEngine, str]]:
    """A scratch table in the app's database (both backends)."""
    engine: AsyncEngine = ctx.app.state.container.engine
    name = f"gw_{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, note TEXT)"))
    yield engine, name
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP TABLE {name}"))


def insert(table: str, row: int, *, refuse: bool = False) -> Write:
    async def write(conn: AsyncConnection) -> None:
        if refuse:
            raise Refused(row)
        await conn.execute(text(f"INSERT INTO {table} (id, note) VALUES (:i, 'x')"), {"i": row})

    return write


async def rows(engine: AsyncEngine, table: str) -> list[int]:
    async with engine.connect() as conn:
        return [r[0] for r in await conn.execute(text(f"SELECT id FROM {table} ORDER BY id"))]


async def test_concurrent_writes_share_one_transaction(table: tuple[AsyncEngine, str]) -> None:
    engine, name = table
    writer = GroupWriter(engine, refusals=(Refused,))
    await asyncio.gather(*(writer.write(insert(name, n)) for n in range(10)))
    assert writer.transactions == 1
    assert await rows(engine, name) == list(range(10))


async def test_a_refusal_goes_back_to_its_caller_alone(table: tuple[AsyncEngine, str]) -> None:
    engine, name = table
    writer = GroupWriter(engine, refusals=(Refused,))
    results = await asyncio.gather(
        *(writer.write(insert(name, n, refuse=n == 3)) for n in range(6)),
        return_exceptions=True,
    )
    assert isinstance(results[3], Refused)
    assert [r for i, r in enumerate(results) if i != 3] == [None] * 5
    assert writer.transactions == 1
    assert await rows(engine, name) == [0, 1, 2, 4, 5]


async def test_a_failing_write_rolls_the_group_back_and_the_others_commit_alone(
    table: tuple[AsyncEngine, str],
) -> None:
    engine, name = table
    writer = GroupWriter(engine, refusals=(Refused,))
    await writer.write(insert(name, 100))
    # Row 100 exists: that write fails, and with it the shared transaction.
    writes = [insert(name, 1), insert(name, 100), insert(name, 2)]
    results = await asyncio.gather(*(writer.write(w) for w in writes), return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], IntegrityError)
    assert await rows(engine, name) == [1, 2, 100]
    assert writer.transactions == 1 + 1 + 3  # the first, the failed group, then each alone
