"""Routes for documents: upload (multipart), list, get, download, delete."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from sqlalchemy import Select, select

from botgpt.deps import ActAs, ContainerDep, CurrentPrincipal, SessionDep
from botgpt.documents.models import READY, Document
from botgpt.documents.parsing import DOCX, HTML, MARKDOWN, PDF, TEXT
from botgpt.documents.service import DocumentService
from botgpt.documents.uploads import FILE_FIELD
from botgpt.openapi import errors_doc
from botgpt.pagination import PageDep

router = APIRouter(prefix="/api/v1/documents", tags=["documents"])
# Seed 001's unprefixed paths (POST/GET /documents), answered the same, left out of the docs.
seed_router = APIRouter(prefix="/documents", tags=["documents"], include_in_schema=False)


class DocumentError(BaseModel):
    """Why ingestion failed, and what to do about it."""

    code: str
    message: str


class DocumentPublic(BaseModel):
    """A document and the state of its ingestion."""

    id: str
    user_id: str
    filename: str
    content_type: str | None
    detected_type: str
    size_bytes: int
    sha256: str
    status: str
    progress: float
    is_vectorized: bool
    error: DocumentError | None
    pages: int | None
    chunk_count: int
    embedding_model: str | None
    created_at: datetime
    updated_at: datetime


class DocumentUploaded(DocumentPublic):
    """The upload's document; `duplicate` is true when the same bytes were uploaded before."""

    duplicate: bool


class DocumentList(BaseModel):
    """A page of documents, newest first."""

    items: list[DocumentPublic]
    total: int
    page: int
    limit: int
    pages: int


def document_public(doc: Document) -> DocumentPublic:
    """The API view of a document row."""
    error = (
        DocumentError(code=doc.error_code, message=doc.error_message or "")
        if doc.error_code
        else None
    )
    return DocumentPublic(
        id=doc.id,
        user_id=doc.owner_id,
        filename=doc.filename,
        content_type=doc.content_type,
        detected_type=doc.detected_type,
        size_bytes=doc.size_bytes,
        sha256=doc.sha256,
        status=doc.status,
        progress=round(doc.progress, 4),
        is_vectorized=doc.status == READY,
        error=error,
        pages=doc.pages,
        chunk_count=doc.chunk_count,
        embedding_model=doc.embedding_model,
        created_at=doc.created_at,
        updated_at=doc.updated_at,
    )


# A declared media type is echoed only when it is a plain `type/subtype` with simple
# parameters; anything else (it came from the client) falls back to the detected type.
_MEDIA_TYPE = re.compile(
    r"[\w.+-]+/[\w.+-]+(\s*;\s*[\w.+-]+=(\"[ !#-\[\]-~]*\"|[\w.+-]+))*", re.ASCII
)
_DETECTED_MEDIA_TYPES = {
    PDF: "application/pdf",
    DOCX: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    HTML: "text/html",
    MARKDOWN: "text/markdown",
    TEXT: "text/plain",
}
_NOT_PLAIN_ASCII = re.compile(r'[^ -~]|["\\%]')


_BINARY = {"type": "string", "format": "binary"}


def attachment(filename: str) -> str:
    """A Content-Disposition for a download: an ASCII name, plus RFC 5987 UTF-8 when needed."""
    fallback = _NOT_PLAIN_ASCII.sub("_", filename) or "download"
    value = f'attachment; filename="{fallback}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


def media_type(doc: Document) -> str:
    """The content type to serve a document's file with: always its detected type.

    The declared type's parameters (e.g. a charset) are kept when it names that same type,
    so what is served is one of the media types the OpenAPI document lists.
    """
    detected = _DETECTED_MEDIA_TYPES.get(doc.detected_type, "application/octet-stream")
    declared = (doc.content_type or "").strip()
    if _MEDIA_TYPE.fullmatch(declared) and declared.split(";", 1)[0].strip().lower() == detected:
        return declared
    return detected


def _documents(c: ContainerDep) -> DocumentService:
    service: DocumentService = c.docs.documents
    return service


_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {
                            "type": "string",
                            "format": "binary",
                            "description": "PDF, DOCX, HTML, Markdown or plain text.",
                        },
                        "user_id": {
                            "type": "string",
                            "description": "Service keys only: the user to act for.",
                        },
                    },
                }
            }
        },
    }
}


def owner_of(document_id: str) -> Select[str]:
    """Selects the owner of a document (for service keys acting on it by id)."""
    return select(Document.owner_id).where(Document.id == document_id)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DocumentUploaded,
    responses={
        200: {"model": DocumentUploaded, "description": "Already uploaded (duplicate)"},
        **errors_doc(401, 403, 413, 415, 422),
    },
    openapi_extra=_UPLOAD_BODY,
)
@seed_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DocumentUploaded,
    openapi_extra=_UPLOAD_BODY,
)
async def upload_document(
    request: Request,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> JSONResponse:
    """Upload a document (multipart `file`); ingestion runs in the background."""
    service = _documents(c)
    # Authentication is done: free the session's connection while the body streams in.
    await db.commit()
    length = request.headers.get("content-length")
    incoming = await service.receive(
        request.stream(),
        request.headers.get("content-type", ""),
        int(length) if length and length.isdigit() else None,
    )
    try:
        form_user = incoming.fields.get("user_id") or None
        owner = await c.auth.acting_user_of(db, principal, user_id, form_user)
        result = await service.upload(db, owner, incoming)
    finally:
        await incoming.discard()
    body = DocumentUploaded(
        **document_public(result.document).model_dump(), duplicate=result.duplicate
    )
    code = status.HTTP_200_OK if result.duplicate else status.HTTP_201_CREATED
    return JSONResponse(body.model_dump(mode="json"), status_code=code)


@router.get("", responses=errors_doc(401, 403, 422))
@seed_router.get("")
async def list_documents(
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    page: PageDep,
    user_id: ActAs = None,
) -> DocumentList:
    """The caller's documents, newest first, with their ingestion status."""
    owner = await c.auth.acting_user(db, principal, user_id)
    docs, total = await _documents(c).list(db, owner, page)
    return DocumentList(
        items=[document_public(d) for d in docs],
        total=total,
        page=page.page,
        limit=page.limit,
        pages=page.pages(total),
    )


@router.get("/{document_id}", responses=errors_doc(401, 403, 404))
@seed_router.get("/{document_id}")
async def get_document(
    document_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> DocumentPublic:
    """A document with its status, progress, error, pages and chunk count."""
    owner = await c.auth.acting_owner(db, principal, owner_of(document_id), user_id)
    doc = await _documents(c).get(db, owner, document_id)
    return document_public(doc)


@router.get(
    "/{document_id}/file",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The original file, as uploaded",
            "content": {t: {"schema": _BINARY} for t in _DETECTED_MEDIA_TYPES.values()},
        },
        **errors_doc(401, 403, 404, 422),
    },
)
async def download_document(
    document_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> StreamingResponse:
    """Download the original uploaded file of a document."""
    owner = await c.auth.acting_owner(db, principal, owner_of(document_id), user_id)
    doc, blob = await _documents(c).open_file(db, owner, document_id)
    # The file streams without the database: give the connection back first.
    await db.commit()
    headers = {
        "Content-Type": media_type(doc),
        "Content-Disposition": attachment(doc.filename),
        "Content-Length": str(blob.size),
        # Uploaded HTML must never run as this origin's page, even if a browser renders it.
        "Content-Security-Policy": "sandbox",
        "Cache-Control": "private, no-store",
    }
    return StreamingResponse(blob.chunks, headers=headers)


@router.delete(
    "/{document_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors_doc(401, 403, 404)
)
@seed_router.delete("/{document_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_document(
    document_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> Response:
    """Delete a document: its file, chunks, vectors and keyword entries go too."""
    owner = await c.auth.acting_owner(db, principal, owner_of(document_id), user_id)
    await _documents(c).delete(db, owner, document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
