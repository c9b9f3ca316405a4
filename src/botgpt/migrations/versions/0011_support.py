"""support: a grounded reply's sentence-by-sentence check against its sources

Revision ID: 0011_support
Revises: 0010_answer_cache
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_support"
down_revision: str | None = "0010_answer_cache"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("support", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "support")
