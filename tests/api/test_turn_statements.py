"""What a chat turn costs the database: statements per send, and on PostgreSQL no BEGIN/COMMIT.

Counts, not timings (bench/chat_turn.py measures the time): a change that adds a statement
or a transaction to the turn's hot path fails here.
"""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from sqlalchemy import Engine, event

from tests.conftest import AppCtx, AuthedUser, ConversationFactory


class Wire:
    """Statements SQLAlchemy sends, and the simple queries (BEGIN, COMMIT...) asyncpg sends."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.simple: list[str] = []

    def on_statement(self, *args: object) -> None:
        self.statements.append(str(args[2]))


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Iterator[Wire]:
    """Record what every engine (the app's and the SQLite writer's) sends while the test runs."""
    seen = Wire()
    original = asyncpg.connection.Connection.execute

    async def execute(self: asyncpg.Connection, query: str, *args: object, **kw: object) -> str:
        seen.simple.append(query)
        return await original(self, query, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncpg.connection.Connection, "execute", execute)
    event.listen(Engine, "before_cursor_execute", seen.on_statement)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", seen.on_statement)


async def _send(client: httpx.AsyncClient, user: AuthedUser, cid: object, text: str) -> None:
    r = await client.post(
        f"/api/v1/conversations/{cid}/messages", json={"content": text}, headers=user.headers
    )
    assert r.status_code == 201, r.text


async def test_a_send_is_two_statements_on_postgres_and_no_transaction(
    ctx: AppCtx,
    client: httpx.AsyncClient,
    user: AuthedUser,
    conversations: ConversationFactory,
    wire: Wire,
) -> None:
    conv = await conversations.create(user)
    await _send(client, user, conv["conversation_id"], "warm up")
    await ctx.app.state.container.chat.drain()
    wire.statements.clear()
    wire.simple.clear()

    await _send(client, user, conv["conversation_id"], "How are you?")
    await ctx.app.state.container.chat.drain()

    turn = [s for s in wire.statements if "messages" in s or "conversations" in s]
    if ctx.backend == "postgres":
        # The question and the pending reply stored with the history read, then the
        # reply's outcome with the conversation's totals: one round trip each.
        assert len(turn) == 2, turn
        assert "INSERT INTO messages" in turn[0] and "UPDATE conversations" in turn[0]
        assert "UPDATE messages" in turn[1] and "UPDATE conversations" in turn[1]
        assert wire.simple == [], wire.simple  # no BEGIN, COMMIT or pool ping
    else:
        # SQLite runs the same work as two transactions of several statements on its
        # writer thread: the bump, the history, the pair; the outcome, the totals.
        assert len(turn) == 5, turn
    # Nothing else reaches the database on a send (authentication, the owner check).
    assert len(wire.statements) == len(turn), wire.statements


async def test_a_new_conversation_is_one_statement_on_postgres(
    ctx: AppCtx, client: httpx.AsyncClient, user: AuthedUser, wire: Wire
) -> None:
    await _send_first(client, user, "warm up")
    await ctx.app.state.container.chat.drain()
    wire.statements.clear()
    wire.simple.clear()

    await _send_first(client, user, "Hello there")
    await ctx.app.state.container.chat.drain()

    writes = [s for s in wire.statements if "INSERT" in s or "UPDATE" in s]
    if ctx.backend == "postgres":
        # The conversation with its two messages, then the reply's outcome.
        assert len(writes) == 2, writes
        assert "INSERT INTO conversations" in writes[0] and "INSERT INTO messages" in writes[0]
        assert wire.simple == [], wire.simple
    else:
        assert len(writes) == 4, writes


async def _send_first(client: httpx.AsyncClient, user: AuthedUser, text: str) -> None:
    r = await client.post(
        "/api/v1/conversations", json={"first_message": text}, headers=user.headers
    )
    assert r.status_code == 201, r.text
