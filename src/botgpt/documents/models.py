"""Tables of uploaded documents and of the documents a grounded conversation answers from.

The chunks themselves (text, vectors, keyword entries) live in the retrieval library's
tables (``botgpt.retrieval.stores.ddl_statements``), created by migration 0003 and tied to
``documents`` so that deleting a document row by any path removes its chunks too.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from botgpt.db import Base
from botgpt.ids import new_id, utcnow
from botgpt.types_ import UTCDateTime

QUEUED = "queued"
PARSING = "parsing"
CHUNKING = "chunking"
EMBEDDING = "embedding"
READY = "ready"
FAILED = "failed"
STATUSES = (QUEUED, PARSING, CHUNKING, EMBEDDING, READY, FAILED)
# Statuses of a document whose ingestion job has not finished (resumed after a crash).
IN_PROGRESS = (QUEUED, PARSING, CHUNKING, EMBEDDING)


class Document(Base):
    """An uploaded file of one owner; the same bytes (sha256) are one document per owner."""

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("owner_id", "sha256", name="uq_documents_owner_sha256"),
        Index("ix_documents_owner_created", "owner_id", "created_at"),
        Index("ix_documents_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(200))  # as declared by the client
    detected_type: Mapped[str] = mapped_column(String(20))  # pdf | docx | html | markdown | text
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(500))
    pages: Mapped[int | None] = mapped_column(Integer)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    embedding_model: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # ingestion runs started
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
