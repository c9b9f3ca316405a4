"""reply leases: the process generating an assistant reply and until when it holds it

Replies still generating when this runs get a lease expiring now: a process that died
before the upgrade left them, and the first sweep settles them as interrupted.

Revision ID: 0006_streams_reply_leases
Revises: 0005
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0006_streams_reply_leases"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "status IN ('pending', 'streaming')"


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    now = sa.bindparam("now", datetime.now(UTC), type_=sa.DateTime(timezone=True))
    op.execute(sa.text(f"UPDATE messages SET lease_expires_at = :now WHERE {LIVE}").bindparams(now))
    op.create_index(
        "ix_messages_live_lease",
        "messages",
        ["lease_expires_at"],
        sqlite_where=sa.text(LIVE),
        postgresql_where=sa.text(LIVE),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_live_lease", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_owner")
