"""chunk page ranges: the last page of each chunk and where its pages start

Revision ID: 0006_chunk_pages
Revises: 0006_streams_reply_leases

The chunk DDL comes from the retrieval library, which already has these columns for new
databases; an existing index gains them here (chunks written before keep their first page
only, with ``page_end`` unknown).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_chunk_pages"
down_revision: str | None = "0006_streams_reply_leases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _columns() -> set[str]:
    # Reading the result's keys works on both dialects without reflecting pgvector's type.
    return set(op.get_bind().execute(sa.text("SELECT * FROM chunks LIMIT 0")).keys())


def upgrade() -> None:
    present = _columns()
    if "page_end" not in present:
        op.execute("ALTER TABLE chunks ADD COLUMN page_end INTEGER")
    if "page_breaks" not in present:
        op.execute("ALTER TABLE chunks ADD COLUMN page_breaks TEXT NOT NULL DEFAULT ''")


def downgrade() -> None:
    # SQLite's chunks table carries triggers; dropping columns is left to a rebuild.
    pass
