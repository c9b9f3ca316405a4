"""SQLite chunk index: compact vectors with exact rescoring, owner token in FTS5

Revision ID: 0012_sqlvec_compact_vectors
Revises: 0011_support

An index built before keeps float vectors as vec0's KNN column and no owner column in FTS5.
Here (SQLite only) ``chunks_vec`` is rebuilt with the compact KNN column and the float vectors
in its auxiliary column (the same vectors: nothing is re-embedded), and ``chunks_fts`` is
rebuilt from ``chunks`` with each row's owner token. A database created by the current 0003
already has both layouts and is left alone. PostgreSQL is untouched.
"""

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import op

from botgpt.retrieval.sqlite_store import (
    dimension_from_schema,
    owner_token,
    quantize,
    quantizer_for,
    sqlite_ddl,
    vec_constructor,
)

revision: str = "0012_sqlvec_compact_vectors"
down_revision: str | None = "0011_support"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 2000
_OLD_VEC = """CREATE VIRTUAL TABLE chunks_vec USING vec0(
    owner_id TEXT PARTITION KEY,
    document_id TEXT,
    embedding FLOAT[{dimension}] distance_metric=cosine
)"""
_OLD_FTS = """CREATE VIRTUAL TABLE chunks_fts USING fts5(
    heading, text,
    content='', contentless_delete=1,
    tokenize='porter unicode61 remove_diacritics 2'
)"""


def _schema(bind: sa.Connection, name: str) -> str:
    found = bind.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE name = :n"), {"n": name}
    ).scalar()
    return str(found or "")


def _statement(dimension: int, table: str) -> str:
    return next(s for s in sqlite_ddl(dimension) if f"EXISTS {table} USING" in s)


def _batches(bind: sa.Connection, sql: str) -> Any:
    """Rows of ``sql`` (which selects seq first and takes :after/:n) in seq order, by batch."""
    after = -1
    while True:
        rows = bind.execute(sa.text(sql), {"after": after, "n": _BATCH}).all()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def _copy_vectors(bind: sa.Connection, dimension: int, *, compact: bool) -> None:
    """Rebuild chunks_vec (new layout if ``compact``) from its float vectors."""
    column = "vector" if "+vector" in _schema(bind, "chunks_vec") else "embedding"
    bind.execute(sa.text("DROP TABLE IF EXISTS _chunks_vec_copy"))
    bind.execute(
        sa.text(
            "CREATE TABLE _chunks_vec_copy AS SELECT rowid AS seq, owner_id, document_id, "
            f"{column} AS vector FROM chunks_vec"
        )
    )
    bind.execute(sa.text("DROP TABLE chunks_vec"))
    quantizer = quantizer_for(dimension)
    if compact:
        bind.execute(sa.text(_statement(dimension, "chunks_vec")))
        constructor = vec_constructor(quantizer)
        insert = (
            "INSERT INTO chunks_vec (rowid, owner_id, document_id, embedding, vector) "
            f"VALUES (:seq, :owner_id, :document_id, {constructor}(:compact), :vector)"
        )
    else:
        bind.execute(sa.text(_OLD_VEC.format(dimension=dimension)))
        insert = (
            "INSERT INTO chunks_vec (rowid, owner_id, document_id, embedding) "
            "VALUES (:seq, :owner_id, :document_id, :vector)"
        )
    select = (
        "SELECT seq, owner_id, document_id, vector FROM _chunks_vec_copy "
        "WHERE seq > :after ORDER BY seq LIMIT :n"
    )
    for rows in _batches(bind, select):
        vectors = np.stack([np.frombuffer(row[3], dtype=np.float32) for row in rows])
        packed = quantize(vectors, quantizer) if compact else vectors
        bind.execute(
            sa.text(insert),
            [
                {
                    "seq": row[0],
                    "owner_id": row[1],
                    "document_id": row[2],
                    "compact": packed[i].tobytes(),
                    "vector": bytes(row[3]),
                }
                for i, row in enumerate(rows)
            ],
        )
    bind.execute(sa.text("DROP TABLE _chunks_vec_copy"))


def _rebuild_fts(bind: sa.Connection, dimension: int, *, with_owner: bool) -> None:
    """Recreate chunks_fts from the chunks rows (contentless FTS5 cannot be altered)."""
    bind.execute(sa.text("DROP TABLE chunks_fts"))
    if with_owner:
        bind.execute(sa.text(_statement(dimension, "chunks_fts")))
        insert = (
            "INSERT INTO chunks_fts (rowid, heading, text, owner) "
            "VALUES (:seq, :heading, :text, :owner)"
        )
    else:
        bind.execute(sa.text(_OLD_FTS))
        insert = "INSERT INTO chunks_fts (rowid, heading, text) VALUES (:seq, :heading, :text)"
    select = (
        "SELECT seq, heading, text, owner_id FROM chunks WHERE seq > :after ORDER BY seq LIMIT :n"
    )
    for rows in _batches(bind, select):
        bind.execute(
            sa.text(insert),
            [
                {"seq": row[0], "heading": row[1], "text": row[2], "owner": owner_token(row[3])}
                for row in rows
            ],
        )


def _dimension(vec_schema: str) -> int:
    dimension = dimension_from_schema(vec_schema)
    if dimension is None:
        raise RuntimeError("chunks_vec has no vector column this migration knows")
    return dimension


def _convert(compact: bool) -> None:
    """Bring vectors and keywords to the compact layout (with the owner token) or back."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    vec_schema = _schema(bind, "chunks_vec")
    if not vec_schema:
        return
    dimension = _dimension(vec_schema)
    if ("+vector" in vec_schema) != compact:
        _copy_vectors(bind, dimension, compact=compact)
    if bool(re.search(r"\bowner\s*,", _schema(bind, "chunks_fts"))) != compact:
        _rebuild_fts(bind, dimension, with_owner=compact)


def upgrade() -> None:
    _convert(compact=True)


def downgrade() -> None:
    _convert(compact=False)
