"""PostgreSQL: rebuild the chunk vectors' HNSW graph denser (m 32, ef_construction 128)

Revision ID: 0014_denser_hnsw
Revises: 0013_pgscale_chunk_search

PostgreSQL only. The index built by 0013 (m 16, ef_construction 64) is replaced by one with
the library's current parameters (``pg_store.HNSW_M`` / ``HNSW_EF_CONSTRUCTION``): it is built
under a temporary name, then swapped in, so searches keep an index until the swap. The build
reads every vector: about 40 s per 100,000 chunks on 2 cores. Databases whose index already
has the current parameters (new ones: 0003 uses the library's DDL) are left alone.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from botgpt.retrieval.pg_store import HNSW_EF_CONSTRUCTION, HNSW_INDEX, HNSW_M

revision: str = "0014_denser_hnsw"
down_revision: str | None = "0013_pgscale_chunk_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BUILDING = "ix_chunks_embedding_hnsw_building"


def _options() -> list[str]:
    """The HNSW index's storage options (e.g. ["m=16", "ef_construction=64"])."""
    found = op.get_bind().execute(
        sa.text("SELECT reloptions FROM pg_class WHERE relname = :name"), {"name": HNSW_INDEX}
    )
    return list(found.scalar_one_or_none() or [])


def _rebuild(m: int, ef_construction: int) -> None:
    if f"m={m}" in _options():
        return
    dimension = op.get_bind().execute(
        sa.text(
            "SELECT atttypmod FROM pg_attribute "
            "WHERE attrelid = to_regclass('chunks') AND attname = 'embedding'"
        )
    )
    dim = int(dimension.scalar_one())
    # pgvector builds in memory while the graph fits; past that it is many times slower.
    op.execute("SET LOCAL maintenance_work_mem = '1GB'")
    op.execute(f"DROP INDEX IF EXISTS {_BUILDING}")
    op.execute(
        f"CREATE INDEX {_BUILDING} ON chunks USING hnsw "
        f"((CAST(embedding AS halfvec({dim}))) halfvec_cosine_ops) "
        f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)})"
    )
    op.execute(f"DROP INDEX IF EXISTS {HNSW_INDEX}")
    op.execute(f"ALTER INDEX {_BUILDING} RENAME TO {HNSW_INDEX}")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _rebuild(HNSW_M, HNSW_EF_CONSTRUCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _rebuild(16, 64)
