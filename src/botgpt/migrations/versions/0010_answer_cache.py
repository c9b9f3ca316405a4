"""answer cache: kept answers (the database store) and the bots' opt-in

Revision ID: 0010_answer_cache
Revises: 0009_bot_conversations
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_answer_cache"
down_revision: str | None = "0009_bot_conversations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "answer_cache",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("citations", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_answer_cache_owner_id", "answer_cache", ["owner_id"])
    op.add_column(
        "bots",
        sa.Column("answer_cache", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("bots", "answer_cache")
    op.drop_index("ix_answer_cache_owner_id", table_name="answer_cache")
    op.drop_table("answer_cache")
