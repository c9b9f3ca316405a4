"""Routes for documents: upload (multipart), list, get, delete."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from botgpt.deps import ContainerDep, CurrentPrincipal, SessionDep
from botgpt.documents.models import READY, Document
from botgpt.documents.service import DocumentService
from botgpt.documents.uploads import FILE_FIELD
from botgpt.exceptions import InvalidInput
from botgpt.openapi import errors_doc
from botgpt.pagination import PageDep

router = APIRouter(prefix="/api/v1/documents", tags=["documents"])

ActAs = Annotated[
    str | None, Query(max_length=200, description="Service keys only: the user to act for.")
]


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


def _documents(c: ContainerDep) -> DocumentService:
    service: DocumentService = c.services["documents"]
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
        if user_id and form_user and user_id != form_user:
            raise InvalidInput("`user_id` differs between the query string and the form.")
        owner = await c.auth.acting_user(db, principal, user_id or form_user)
        result = await service.upload(db, owner, incoming)
    finally:
        await incoming.discard()
    body = DocumentUploaded(
        **document_public(result.document).model_dump(), duplicate=result.duplicate
    )
    code = status.HTTP_200_OK if result.duplicate else status.HTTP_201_CREATED
    return JSONResponse(body.model_dump(mode="json"), status_code=code)


@router.get("", responses=errors_doc(401, 403, 422))
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
        pages=math.ceil(total / page.limit) if total else 0,
    )


@router.get("/{document_id}", responses=errors_doc(401, 403, 404))
async def get_document(
    document_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> DocumentPublic:
    """A document with its status, progress, error, pages and chunk count."""
    owner = await c.auth.acting_user(db, principal, user_id)
    doc = await _documents(c).get(db, owner, document_id)
    return document_public(doc)


@router.delete(
    "/{document_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors_doc(401, 403, 404)
)
async def delete_document(
    document_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> Response:
    """Delete a document: its file, chunks, vectors and keyword entries go too."""
    owner = await c.auth.acting_user(db, principal, user_id)
    await _documents(c).delete(db, owner, document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
