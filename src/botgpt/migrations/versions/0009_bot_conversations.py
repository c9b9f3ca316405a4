"""bot conversations: visitor sessions, reply sources and bot versions, feedback on replies

Revision ID: 0009_bot_conversations
Revises: 0008_bots
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_bot_conversations"
down_revision: str | None = "0008_bots"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch copy: rebuilding `conversations` on SQLite would drop
    # the table, and its messages would go with it (ON DELETE CASCADE).
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE conversations ADD COLUMN bot_id VARCHAR(36) "
            "CONSTRAINT fk_conversations_bot REFERENCES bots (id) ON DELETE CASCADE"
        )
    else:
        op.add_column("conversations", sa.Column("bot_id", sa.String(length=36), nullable=True))
        op.create_foreign_key(
            "fk_conversations_bot", "conversations", "bots", ["bot_id"], ["id"], ondelete="CASCADE"
        )
    op.add_column("conversations", sa.Column("visitor_session", sa.String(64), nullable=True))
    op.add_column("conversations", sa.Column("visitor_id", sa.String(200), nullable=True))
    op.create_index("ix_conversations_bot_session", "conversations", ["bot_id", "visitor_session"])
    op.create_index("ix_conversations_bot_visitor", "conversations", ["bot_id", "visitor_id"])
    op.add_column("messages", sa.Column("source", sa.String(length=16), nullable=True))
    op.add_column("messages", sa.Column("faq_id", sa.String(length=36), nullable=True))
    op.add_column("messages", sa.Column("bot_version", sa.Integer(), nullable=True))
    op.create_table(
        "message_feedback",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("rater", sa.String(length=100), nullable=False),
        sa.Column("rating", sa.String(length=8), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id", "rater", name="uq_message_feedback_rater"),
    )


def downgrade() -> None:
    op.drop_table("message_feedback")
    for column in ("bot_version", "faq_id", "source"):
        op.drop_column("messages", column)
    op.drop_index("ix_conversations_bot_visitor", table_name="conversations")
    op.drop_index("ix_conversations_bot_session", table_name="conversations")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_conversations_bot", "conversations", type_="foreignkey")
    for column in ("visitor_id", "visitor_session", "bot_id"):
        op.drop_column("conversations", column)
