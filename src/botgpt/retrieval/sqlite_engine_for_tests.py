"""SQLite engine factory for retrieval tests and benchmarks (the app builds its own in db.py).

The stdlib ``sqlite3`` here cannot load extensions, so the engine runs on the ``sqlean.py``
driver through aiosqlite, loading sqlite-vec on every new connection.
"""

from __future__ import annotations

import types
from typing import Any

import aiosqlite
import sqlean
import sqlite_vec
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_dbapi
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_DBAPI_NAMES = (
    "DatabaseError",
    "Error",
    "IntegrityError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "sqlite_version",
    "sqlite_version_info",
)


def _sqlean_aiosqlite_shim() -> types.ModuleType:
    # aiosqlite re-exports the stdlib sqlite3 exception classes; SQLAlchemy maps errors
    # by those names, so they must be sqlean's classes or errors would escape unwrapped.
    shim = types.ModuleType("aiosqlite_sqlean")
    shim.__dict__.update(aiosqlite.__dict__)
    for name in _DBAPI_NAMES:
        setattr(shim, name, getattr(sqlean, name))
    return shim


def make_sqlite_engine(path: str, **engine_kwargs: Any) -> AsyncEngine:
    """Create an async SQLAlchemy engine on ``path`` with sqlite-vec loaded on each connection."""

    async def creator() -> Any:
        def connect() -> Any:
            conn = sqlean.connect(path, check_same_thread=False)
            conn.enable_load_extension(True)
            sqlite_vec.load(conn)
            conn.enable_load_extension(False)
            return conn

        return await aiosqlite.core.Connection(connect, iter_chunk_size=64)

    return create_async_engine(
        "sqlite+aiosqlite:///" + path,
        async_creator=creator,
        module=AsyncAdapt_aiosqlite_dbapi(_sqlean_aiosqlite_shim(), sqlean),
        **engine_kwargs,
    )
