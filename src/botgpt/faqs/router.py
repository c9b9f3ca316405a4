"""Routes for FAQs: create, list, search, get, update (PUT or PATCH), delete, feedback."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from botgpt.deps import ActAs, ContainerDep, CurrentPrincipal, SessionDep
from botgpt.exceptions import InvalidInput
from botgpt.faqs.models import Faq
from botgpt.faqs.schemas import (
    FaqCreate,
    FaqFeedback,
    FaqList,
    FaqMatch,
    FaqPublic,
    FaqSearchResponse,
    FaqUpdate,
    Status,
)
from botgpt.faqs.service import DEFAULT_SEARCH_SCORE, FaqFilters, FaqService
from botgpt.openapi import errors_doc
from botgpt.pagination import PageDep

router = APIRouter(prefix="/api/v1/faqs", tags=["faqs"])

CategoryFilter = Annotated[
    str | None, Query(min_length=1, max_length=100, description="Only FAQs of this category.")
]
LanguageFilter = Annotated[
    str | None, Query(min_length=1, max_length=16, description="Only FAQs in this language.")
]


def faq_service(c: ContainerDep) -> FaqService:
    """The FAQ service over the app's embedder and sessions."""
    return FaqService(c.docs.embedder, c.sessions)


def faq_public(faq: Faq) -> FaqPublic:
    """The API view of an FAQ row."""
    return FaqPublic(
        id=faq.id,
        user_id=faq.owner_id,
        question=faq.question,
        answer=faq.answer,
        category=faq.category,
        category_id=faq.category_id,
        priority=faq.priority,
        tags=[str(t) for t in faq.tags],
        language=faq.language,
        status=faq.status,
        hits=faq.hits,
        view_count=faq.view_count,
        helpful_count=faq.helpful_count,
        not_helpful_count=faq.not_helpful_count,
        embedding_model=faq.embedding_model,
        created_at=faq.created_at,
        updated_at=faq.updated_at,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=errors_doc(401, 403, 404, 409, 422, 503),
)
async def create_faq(
    body: FaqCreate,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> FaqPublic:
    """Create an FAQ; its question is embedded for semantic search."""
    owner = await c.auth.acting_user_of(db, principal, user_id, body.user_id)
    return faq_public(await faq_service(c).create(db, owner, body))


@router.get("", responses=errors_doc(401, 403, 422))
async def list_faqs(
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    page: PageDep,
    user_id: ActAs = None,
    status_: Annotated[
        Status | None, Query(alias="status", description="Only FAQs in this status.")
    ] = None,
    category: CategoryFilter = None,
    language: LanguageFilter = None,
) -> FaqList:
    """The caller's FAQs, newest first, optionally filtered by status, category and language."""
    owner = await c.auth.acting_user(db, principal, user_id)
    filters = FaqFilters(status_, category, language)
    faqs, total = await faq_service(c).list_faqs(db, owner, page, filters)
    return FaqList(
        items=[faq_public(f) for f in faqs],
        total=total,
        page=page.page,
        limit=page.limit,
        pages=page.pages(total),
    )


@router.get("/search", responses=errors_doc(401, 403, 422, 503))
async def search_faqs(
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    q: Annotated[str, Query(min_length=1, max_length=1000, description="The question.")],
    limit: Annotated[int, Query(ge=1, le=50, description="At most this many matches.")] = 5,
    min_score: Annotated[
        float, Query(ge=-1.0, le=1.0, description="Leave out matches below this cosine.")
    ] = DEFAULT_SEARCH_SCORE,
    category: CategoryFilter = None,
    language: LanguageFilter = None,
    user_id: ActAs = None,
) -> FaqSearchResponse:
    """The caller's active FAQs most similar to `q` (cosine score), best first."""
    if not q.strip():
        raise InvalidInput("The query must not be blank.", details={"param": "q"})
    owner = await c.auth.acting_user(db, principal, user_id)
    found = await faq_service(c).search(
        db, owner, q, limit=limit, min_score=min_score, category=category, language=language
    )
    return FaqSearchResponse(
        query=q,
        results=[FaqMatch(**faq_public(f).model_dump(), score=score) for f, score in found],
    )


@router.get("/{faq_id}", responses=errors_doc(401, 403, 404))
async def get_faq(
    faq_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> FaqPublic:
    """One of the caller's FAQs (counted as a view)."""
    owner = await c.auth.acting_user(db, principal, user_id)
    return faq_public(await faq_service(c).record_view(db, owner, faq_id))


@router.patch("/{faq_id}", responses=errors_doc(401, 403, 404, 422, 503))
@router.put(
    "/{faq_id}",
    responses=errors_doc(401, 403, 404, 422, 503),
    description="The same partial update as PATCH: only the fields sent change.",
)
async def update_faq(
    faq_id: str,
    body: FaqUpdate,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> FaqPublic:
    """Update an FAQ's fields; a changed question is embedded again."""
    owner = await c.auth.acting_user(db, principal, user_id)
    return faq_public(await faq_service(c).update(db, owner, faq_id, body))


@router.delete(
    "/{faq_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors_doc(401, 403, 404)
)
async def delete_faq(
    faq_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> Response:
    """Delete an FAQ."""
    owner = await c.auth.acting_user(db, principal, user_id)
    await faq_service(c).delete(db, owner, faq_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{faq_id}/feedback", responses=errors_doc(401, 403, 404, 422))
async def faq_feedback(
    faq_id: str,
    body: FaqFeedback,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> FaqPublic:
    """Count a helpful / not helpful verdict on an FAQ's answer."""
    owner = await c.auth.acting_user(db, principal, user_id)
    return faq_public(await faq_service(c).record_feedback(db, owner, faq_id, body.helpful))
