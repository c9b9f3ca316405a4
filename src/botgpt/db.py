"""Async engine and session factory for SQLite (sqlean + sqlite-vec) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import functools
import time
import types
from pathlib import Path
from typing import Any

import aiosqlite
import orjson
import sqlean
import sqlite_vec
from sqlalchemy import event, exc
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_dbapi
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import QueuePool

from botgpt.files import private_file
from botgpt.retrieval.sqlite_store import QUERY_TERMS_DDL

_SQLITE_ERRORS = (
    "DatabaseError",
    "Error",
    "IntegrityError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "sqlite_version",
    "sqlite_version_info",
)


class Base(DeclarativeBase):
    """Declarative base of every table."""


def json_dumps(value: Any) -> str:
    """JSON columns' serializer: orjson, a tenth of `json.dumps`'s cost on a turn's manifest.

    Reading keeps `json.loads`, which also accepts what `json.dumps` once wrote (NaN).
    """
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _sqlean_dbapi() -> Any:
    # The stdlib sqlite3 of this Python cannot load extensions (sqlite-vec), so the
    # aiosqlite adapter runs on sqlean; its exception classes must be sqlean's too or
    # SQLAlchemy would not translate IntegrityError and friends.
    shim = types.ModuleType("aiosqlite_sqlean")
    shim.__dict__.update(aiosqlite.__dict__)
    for name in _SQLITE_ERRORS:
        setattr(shim, name, getattr(sqlean, name))
    return AsyncAdapt_aiosqlite_dbapi(shim, sqlean)


def sqlite_path(url: str) -> str:
    """The file path of a sqlite+aiosqlite URL (':memory:' for none)."""
    path = url.split("///", 1)[1] if "///" in url else ""
    return path or ":memory:"


def sqlite_connect(path: str, *, search: bool = False) -> Any:
    """A sqlean connection with sqlite-vec loaded, WAL and a generous busy timeout.

    Automatic checkpoints are off: `botgpt.sqlrunner.Checkpointer` runs them on a thread.
    ``search``: the connection also gets the temp tables keyword search uses (the pool's
    connections; not the writer's nor the checkpointer's, whose checkpoint they would block).
    """
    conn = sqlean.connect(path, check_same_thread=False, timeout=30)
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    conn.enable_load_extension(False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    # No checkpoint inside a commit (it would make that commit, and every transaction queued
    # behind it, wait for the copy and its fsync): the SQL runner's checkpointer thread does it.
    conn.execute("PRAGMA wal_autocheckpoint=0")
    if search:
        # The temp schema in memory: no temp file per connection (nor a writable /tmp needed).
        conn.execute("PRAGMA temp_store=MEMORY")
        for statement in QUERY_TERMS_DDL:  # temp objects, made outside any transaction
            conn.execute(statement)
    return conn


def _make_sqlite_engine(url: str) -> AsyncEngine:
    path = sqlite_path(url)
    if path != ":memory:":
        # Created 0600 in a 0700 folder; SQLite gives its -wal and -shm files the same mode.
        private_file(Path(path))

    async def creator() -> Any:
        return await aiosqlite.core.Connection(
            functools.partial(sqlite_connect, path, search=True), iter_chunk_size=64
        )

    # SQLite has one writer: a small pool avoids lock churn while letting reads overlap.
    return create_async_engine(
        url,
        async_creator=creator,
        module=_sqlean_dbapi(),
        pool_size=4,
        max_overflow=0,
        json_serializer=json_dumps,
    )


# A pooled PostgreSQL connection idle longer than this is pinged before use.
PING_IDLE_SECONDS = 5.0


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Ping a pooled connection on checkout only if it was not used for `idle_seconds`.

    `pool_pre_ping` pings on every checkout: BEGIN, a query and ROLLBACK, three round trips
    in front of every transaction. A connection used a moment ago is alive; one idle for a
    while may have been dropped (a restarted server, an idle timeout), and a failed ping
    invalidates the whole pool, as pre-ping does, so every dead connection is replaced.
    The listener is on the pool, not the engine: an engine with listeners dispatches
    events on every begin and rollback of every connection.
    """
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        # Measured from the last checkout, not the last checkin: one listener, and a
        # connection held that long gets one ping too many at worst.
        now = time.monotonic()
        last = record.info.get("used_at")
        record.info["used_at"] = now
        if last is None or now - last < idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as e:
            raise exc.InvalidatePoolError(f"ping failed: {type(e).__name__}") from e


def has_spare_connection(engine: AsyncEngine) -> bool:
    """Whether the pool would hand out one more connection now, without waiting.

    A request that holds a connection and takes a second one (hybrid search's parallel
    queries) asks first: were every pooled connection held by such requests, each would
    wait for the others' second connection until the pool timeout.
    """
    pool = engine.sync_engine.pool
    if not isinstance(pool, QueuePool):
        return False
    # overflow() counts up from -pool_size as connections are opened (both engines here
    # allow no overflow): below zero, a new connection can still be opened.
    return pool.checkedin() > 0 or pool.overflow() < 0


def make_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    """Create the async engine for `url`."""
    if url.startswith("sqlite"):
        return _make_sqlite_engine(url)
    # Up to twice `pool_size` connections, as before, but kept once opened: an overflow
    # connection closed on return is reopened (TLS probe, authentication, type setup, every
    # statement prepared again) by the next burst, which at 32 concurrent turns was every
    # few turns. LIFO: the busiest connections are reused, so their prepared statements
    # are warm and the rest stay idle (and are pinged before their next use).
    engine = create_async_engine(
        url,
        pool_size=2 * pool_size,
        max_overflow=0,
        pool_use_lifo=True,
        json_serializer=json_dumps,
    )
    _ping_when_idle(engine, PING_IDLE_SECONDS)
    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A session factory that keeps objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
