"""documents, conversation_documents and the chunk index (vectors + keywords)

Revision ID: 0003
Revises: 0002

The chunk tables come from the retrieval library (``ddl_statements``) for the current
dialect. Chunks are tied to their document so nothing can orphan them: on PostgreSQL by a
cascading foreign key; on SQLite (whose ``chunks`` DDL cannot gain a foreign key afterwards)
by triggers that refuse a chunk of a missing document and delete a document's chunks with it
(the library's own triggers then drop the vector and FTS rows).

The vector dimension is the embedder's: ``embedding_dimension`` passed in the Alembic config
attributes, else ``BOTGPT_EMBEDDING_DIMENSION``, else 384 (the bundled MiniLM).
"""

import os
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from botgpt.retrieval.stores import ddl_statements

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _dimension() -> int:
    configured = context.config.attributes.get("embedding_dimension")
    if configured is None:
        configured = os.environ.get("BOTGPT_EMBEDDING_DIMENSION") or 384
    return int(configured)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table(
        "documents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=200), nullable=True),
        sa.Column("detected_type", sa.String(length=20), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.String(length=500), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=True),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("embedding_model", sa.String(length=100), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_id", "sha256", name="uq_documents_owner_sha256"),
    )
    op.create_index("ix_documents_owner_created", "documents", ["owner_id", "created_at"])
    op.create_index("ix_documents_status", "documents", ["status"])
    op.create_table(
        "conversation_documents",
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("document_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("conversation_id", "document_id"),
    )
    op.create_index(
        "ix_conversation_documents_document_id", "conversation_documents", ["document_id"]
    )
    for statement in ddl_statements(dialect, _dimension()):
        op.execute(statement)
    if dialect == "postgresql":
        op.execute(
            "ALTER TABLE chunks ADD CONSTRAINT fk_chunks_document FOREIGN KEY (document_id) "
            "REFERENCES documents (id) ON DELETE CASCADE"
        )
    else:
        op.execute(
            "CREATE TRIGGER IF NOT EXISTS chunks_require_document BEFORE INSERT ON chunks "
            "WHEN NOT EXISTS (SELECT 1 FROM documents WHERE id = NEW.document_id) "
            "BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: chunk of a missing "
            "document'); END"
        )
        op.execute(
            "CREATE TRIGGER IF NOT EXISTS documents_delete_chunks AFTER DELETE ON documents "
            "BEGIN DELETE FROM chunks WHERE document_id = OLD.id; END"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TABLE IF EXISTS chunks")
    else:
        op.execute("DROP TRIGGER IF EXISTS documents_delete_chunks")
        op.execute("DROP TRIGGER IF EXISTS chunks_require_document")
        op.execute("DROP TRIGGER IF EXISTS chunks_after_delete")
        op.execute("DROP TABLE IF EXISTS chunks_fts")
        op.execute("DROP TABLE IF EXISTS chunks_vec")
        op.execute("DROP TABLE IF EXISTS chunks")
    op.drop_index("ix_conversation_documents_document_id", table_name="conversation_documents")
    op.drop_table("conversation_documents")
    op.drop_index("ix_documents_status", table_name="documents")
    op.drop_index("ix_documents_owner_created", table_name="documents")
    op.drop_table("documents")
