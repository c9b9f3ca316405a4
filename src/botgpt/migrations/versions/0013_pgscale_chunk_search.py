"""PostgreSQL chunk search at scale: half-precision HNSW index and keyword term statistics

Revision ID: 0013_pgscale_chunk_search
Revises: 0012_sqlvec_compact_vectors

PostgreSQL only (SQLite is unchanged). Vectors are kept in the row (storage MAIN) rather
than in TOAST for rows written from now on. The full-precision HNSW index is replaced by one over
``CAST(embedding AS halfvec(n))`` (rebuilt from the rows: minutes for a million chunks), and
``chunks_terms`` (document frequency per lexeme, kept by triggers) is created and counted from
the existing rows. New databases get the same objects from the library's DDL in 0003.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from botgpt.retrieval.pg_keyword import TERMS_TABLE, rebuild_term_stats_sql, term_stats_ddl
from botgpt.retrieval.pg_store import KEEP_VECTORS_INLINE, hnsw_index_ddl

revision: str = "0013_pgscale_chunk_search"
down_revision: str | None = "0012_sqlvec_compact_vectors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_INDEX = "ix_chunks_embedding_hnsw"


def _dimension() -> int:
    """The vector column's declared dimension (its type modifier)."""
    found = op.get_bind().execute(
        sa.text(
            "SELECT atttypmod FROM pg_attribute "
            "WHERE attrelid = to_regclass('chunks') AND attname = 'embedding'"
        )
    )
    return int(found.scalar_one())


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(KEEP_VECTORS_INLINE)  # rows written from now on; old rows stay as they are
    op.execute(f"DROP INDEX IF EXISTS {_OLD_INDEX}")
    # The graph parameters of this revision (0014 rebuilds with denser ones).
    op.execute(hnsw_index_ddl(_dimension(), m=16, ef_construction=64))
    for statement in term_stats_ddl():
        op.execute(statement)
    for statement in rebuild_term_stats_sql():
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for trigger in ("insert", "delete", "update", "truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS chunk_terms_after_{trigger} ON chunks")
    for function in ("added", "removed", "changed", "truncated"):
        op.execute(f"DROP FUNCTION IF EXISTS chunk_terms_{function}()")
    op.execute(f"DROP TABLE IF EXISTS {TERMS_TABLE}")
    op.execute("DROP INDEX IF EXISTS ix_chunks_embedding_hnsw_half")
    op.execute("ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE EXTERNAL")
    op.execute(
        f"CREATE INDEX IF NOT EXISTS {_OLD_INDEX} ON chunks "
        "USING hnsw (embedding vector_cosine_ops)"
    )
