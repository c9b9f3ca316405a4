"""Run a synchronous SQLAlchemy Core function in one transaction, cheaply, on either backend.

The chat turn's hot path issues several statements per transaction. Through the async
SQLite adapter every statement (and every cursor call) is a hop to a worker thread;
running the whole transaction as one function costs one hop. On PostgreSQL the same
function runs on asyncpg through SQLAlchemy's greenlet bridge, with no thread at all, in
one greenlet per transaction. There every statement is a round trip, and so are BEGIN and
COMMIT: `run_single` runs a function that issues one statement (atomic by itself) without
them, one round trip in all.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import sqlean
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import StaticPool
from sqlalchemy.util import greenlet_spawn

from botgpt.db import json_dumps, sqlite_connect, sqlite_path

T = TypeVar("T")
log = logging.getLogger("botgpt.sql")


class SqlRunner:
    """Executes `fn(connection)` inside a transaction and returns its result.

    The PostgreSQL form runs `fn` on the async engine's synchronous facade in one greenlet
    (checkout, statements, commit and checkin; `AsyncConnection` would spawn one for each);
    `SqliteRunner` overrides it to run on a dedicated thread with a synchronous engine.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sync_engine: Engine = engine.sync_engine

    @property
    def single_statements(self) -> bool:
        """Whether `run_single` saves round trips (PostgreSQL), so callers prefer it."""
        return True

    def _transaction(self, fn: Callable[[Connection], T]) -> T:
        with self.sync_engine.begin() as conn:
            return fn(conn)

    def _single(self, fn: Callable[[Connection], T]) -> T:
        with self.sync_engine.connect() as conn:
            # The driver sends no BEGIN/COMMIT; reset when the connection goes back to the
            # pool. Set here rather than on an engine copy, whose listener would make every
            # connection dispatch its events.
            conn.execution_options(isolation_level="AUTOCOMMIT")
            return fn(conn)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in a transaction (committed if it returns, rolled back if it raises)."""
        return await greenlet_spawn(self._transaction, fn)

    async def run_single(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn`, which issues exactly one statement, outside an explicit transaction.

        A single statement is atomic on its own, so PostgreSQL needs no BEGIN and COMMIT
        round trips around it; on SQLite this is `run`.
        """
        return await greenlet_spawn(self._single, fn)

    async def close(self) -> None:
        """Release resources held only by the runner."""


class Checkpointer:
    """Copies the SQLite write-ahead log back into the database file, on a thread of its own.

    Left to SQLite, the commit that crosses 1000 log pages runs the checkpoint: that commit
    (and, on the writer thread, every transaction queued behind it, such as the first write
    of a new reply) then waits for the copy and its fsync, hundreds of milliseconds on a busy
    disk. Connections are opened with automatic checkpoints off (`botgpt.db.sqlite_connect`);
    this thread checkpoints every `interval` seconds, PASSIVE, so no writer ever waits for it.
    """

    def __init__(self, path: str, interval: float = 1.0) -> None:
        self.path = path
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite_connect(self.path)
        try:
            while not self._stop.wait(self.interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlean.Error:
                    log.warning("SQLite checkpoint failed", exc_info=True)
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()

    def stop(self) -> None:
        """Checkpoint once more and stop the thread."""
        self._stop.set()
        self._thread.join(30)


class SqliteRunner(SqlRunner):
    """SQLite: one writer thread owns a synchronous connection; transactions queue on it.

    SQLite serialises writers anyway; queueing them in-process avoids lock contention
    and busy-waiting between our own connections.
    """

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.engine = engine
        path = sqlite_path(url)
        self.sync_engine: Engine = create_engine(
            "sqlite://",
            creator=functools.partial(sqlite_connect, path),
            module=sqlean,
            poolclass=StaticPool,  # one connection, used only by the writer thread
            json_serializer=json_dumps,
        )
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self.checkpointer = Checkpointer(path) if path != ":memory:" else None

    @property
    def single_statements(self) -> bool:
        """On SQLite a transaction costs nothing extra: callers batch work in `run` instead."""
        return False

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in a transaction on the writer thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._transaction, fn)

    async def run_single(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` like `run` (one hop to the writer thread)."""
        return await self.run(fn)

    async def close(self) -> None:
        """Close the connection and stop the thread."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self.sync_engine.dispose)
        self._thread.shutdown(wait=True)
        if self.checkpointer is not None:
            await asyncio.to_thread(self.checkpointer.stop)


def make_runner(engine: AsyncEngine, url: str) -> SqlRunner:
    """The runner for the engine's backend."""
    if url.startswith("sqlite"):
        return SqliteRunner(engine, url)
    return SqlRunner(engine)
