"""Route for searching the caller's documents: hybrid, keyword or vector."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, field_validator

from botgpt.deps import ContainerDep, CurrentPrincipal, SessionDep
from botgpt.documents.scope import DocumentScope
from botgpt.openapi import errors_doc
from botgpt.text import Text

router = APIRouter(prefix="/api/v1", tags=["search"])


class SearchRequest(BaseModel):
    """A search over the caller's ready documents (or the listed ones, which must be ready)."""

    query: Text = Field(min_length=1, max_length=2000)
    document_ids: list[Text] | None = Field(default=None, max_length=100)
    k: int = Field(default=5, ge=1, le=50)
    mode: Literal["hybrid", "keyword", "vector"] = "hybrid"
    user_id: Text | None = Field(
        default=None, max_length=200, description="Service keys only: the user to act for."
    )

    @field_validator("query")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the query must not be blank")
        return v


class SearchPassage(BaseModel):
    """A passage of a document: what a grounded answer cites, with its exact span."""

    rank: int
    score: float
    document_id: str
    filename: str
    chunk_id: str
    page: int | None
    page_end: int | None
    char_start: int
    char_end: int
    heading: str
    text: str
    keyword_score: float | None
    vector_score: float | None


class SearchResponse(BaseModel):
    """Passages, best first."""

    query: str
    mode: str
    results: list[SearchPassage]


@router.post("/search", responses=errors_doc(401, 403, 404, 409, 422))
async def search_documents(
    body: SearchRequest, principal: CurrentPrincipal, db: SessionDep, c: ContainerDep
) -> SearchResponse:
    """Search the caller's documents; results never include another user's passages."""
    owner = await c.auth.acting_user(db, principal, body.user_id)
    await db.commit()  # the scope uses its own connections: free this one meanwhile
    scope: DocumentScope = c.docs.scope
    found = await scope.passages(
        owner, body.query, document_ids=body.document_ids, k=body.k, mode=body.mode
    )
    return SearchResponse(
        query=body.query,
        mode=body.mode,
        results=[
            SearchPassage(
                rank=rank,
                score=p.hit.score,
                document_id=p.hit.document_id,
                filename=p.filename,
                chunk_id=p.hit.chunk_id,
                page=p.hit.page,
                page_end=p.hit.page_end if p.hit.page_end is not None else p.hit.page,
                char_start=p.hit.char_start,
                char_end=p.hit.char_end,
                heading=p.hit.heading,
                text=p.hit.text,
                keyword_score=p.hit.keyword_score,
                vector_score=p.hit.vector_score,
            )
            for rank, p in enumerate(found, start=1)
        ],
    )
