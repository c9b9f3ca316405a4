"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL.

Several changes add tables and columns at once; a model column without a migration (or
the reverse) would only show on a real upgrade, so the migrated database is compared with
the models' metadata here.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

import botgpt.models  # noqa: F401  (registers every table on the metadata)
from botgpt.db import Base
from tests.conftest import AppCtx

# Tables the retrieval library creates with its own DDL (virtual tables, vectors).
_OUTSIDE_ORM = ("chunks", "chunks_vec", "chunks_fts", "alembic_version")


def _include_name(name: str | None, kind: str, _parent: Any) -> bool:
    # Filtered by name, so those tables are not even reflected (pgvector's type is unknown).
    return kind != "table" or not (name or "").startswith(_OUTSIDE_ORM)


def _diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn,
        opts={
            "include_name": _include_name,
            "compare_type": False,
            "compare_server_default": False,
        },
    )
    return _without_unnamed_fk_pairs(list(compare_metadata(context, Base.metadata)))


def _fk_shape(fk: Any) -> tuple[str, tuple[str, ...], str]:
    return (fk.table.name, tuple(c.name for c in fk.columns), fk.referred_table.name)


def _without_unnamed_fk_pairs(diff: list[Any]) -> list[Any]:
    """Drop remove/add pairs of the same foreign key that differ only by name.

    SQLite keeps a key added by ALTER TABLE inline in the column definition, and
    SQLAlchemy's reflection does not read the name from there; the key itself is checked.
    """
    removed = {_fk_shape(d[1]) for d in diff if d[0] == "remove_fk"}
    added = {_fk_shape(d[1]) for d in diff if d[0] == "add_fk"}
    same = removed & added
    return [d for d in diff if not (d[0] in ("remove_fk", "add_fk") and _fk_shape(d[1]) in same)]


async def test_migrations_match_the_models(ctx: AppCtx) -> None:
    engine = ctx.app.state.container.engine
    async with engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == []
