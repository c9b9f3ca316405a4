"""Shapes of the personal-data export."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from botgpt.auth.schemas import ApiKeyPublic, ConsentPublic, UserPublic
from botgpt.conversations.schemas import ConversationPublic, UsageTotals
from botgpt.documents.models import Document


class DocumentExport(BaseModel):
    """A document's metadata; the file itself is at `download`."""

    id: str
    filename: str
    content_type: str | None
    detected_type: str
    size_bytes: int
    sha256: str
    status: str
    pages: int | None
    chunk_count: int
    created_at: datetime
    download: str


class ExportHead(BaseModel):
    """The part of an export that is small and built before streaming starts."""

    exported_at: datetime
    user: UserPublic
    consent_history: list[ConsentPublic]
    api_keys: list[ApiKeyPublic]
    usage: UsageTotals


class PersonalDataExport(ExportHead):
    """Everything stored about a user (the whole export, for the API docs)."""

    documents: list[DocumentExport]
    conversations: list[ConversationPublic]


def document_export(doc: Document) -> DocumentExport:
    """A document row as it appears in an export."""
    return DocumentExport(
        id=doc.id,
        filename=doc.filename,
        content_type=doc.content_type,
        detected_type=doc.detected_type,
        size_bytes=doc.size_bytes,
        sha256=doc.sha256,
        status=doc.status,
        pages=doc.pages,
        chunk_count=doc.chunk_count,
        created_at=doc.created_at,
        download=f"/api/v1/documents/{doc.id}/file",
    )
