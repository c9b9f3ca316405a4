"""seed 004's data: user profile and consents, FAQ categories, priorities and counters

Revision ID: 0007_seed004_data
Revises: 0006_chunk_pages
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_seed004_data"
down_revision: str | None = "0006_chunk_pages"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("username", sa.String(length=100), nullable=True))
    op.add_column("users", sa.Column("full_name", sa.String(length=200), nullable=True))
    op.add_column(
        "users",
        sa.Column("role", sa.String(length=20), nullable=False, server_default="user"),
    )
    op.add_column("users", sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE users SET role = 'admin' WHERE is_admin")
    op.create_index("uq_users_username", "users", ["username"], unique=True)
    op.create_table(
        "user_consents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_user_consents_user_kind", "user_consents", ["user_id", "kind"])
    op.create_table(
        "faq_categories",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_id", "name", name="uq_faq_categories_owner_name"),
    )
    with op.batch_alter_table("faqs") as batch:
        batch.add_column(sa.Column("category_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        for counter in ("view_count", "helpful_count", "not_helpful_count"):
            batch.add_column(sa.Column(counter, sa.Integer(), nullable=False, server_default="0"))
        batch.create_foreign_key(
            "fk_faqs_category", "faq_categories", ["category_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_faqs_category_id", ["category_id"])


def downgrade() -> None:
    with op.batch_alter_table("faqs") as batch:
        batch.drop_index("ix_faqs_category_id")
        batch.drop_constraint("fk_faqs_category", type_="foreignkey")
        for column in ("not_helpful_count", "helpful_count", "view_count", "priority"):
            batch.drop_column(column)
        batch.drop_column("category_id")
    op.drop_table("faq_categories")
    op.drop_index("ix_user_consents_user_kind", table_name="user_consents")
    op.drop_table("user_consents")
    op.drop_index("uq_users_username", table_name="users")
    for column in ("last_login_at", "role", "full_name", "username"):
        op.drop_column("users", column)
