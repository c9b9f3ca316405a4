"""faqs: curated question/answer pairs with the question's embedding

Revision ID: 0004
Revises: 0003

The embedding is the raw bytes of a float32 vector (BLOB / bytea): FAQ sets are small, so
search ranks an owner's vectors in memory and needs no vector index on either backend.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "faqs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("embedding_model", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_faqs_owner_status", "faqs", ["owner_id", "status"])
    op.create_index("ix_faqs_owner_created", "faqs", ["owner_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_faqs_owner_created", table_name="faqs")
    op.drop_index("ix_faqs_owner_status", table_name="faqs")
    op.drop_table("faqs")
