"""Routes for FAQ categories (seed 004): create, list, get, update (PUT or PATCH), delete."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy import Select, select

from botgpt.deps import ActAs, ContainerDep, CurrentPrincipal, SessionDep
from botgpt.faqs.categories import CategoryService
from botgpt.faqs.models import FaqCategory
from botgpt.faqs.schemas import CategoryCreate, CategoryList, CategoryPublic, CategoryUpdate
from botgpt.openapi import errors_doc
from botgpt.pagination import PageDep

# Registered before the FAQ routes so that /faqs/categories is not read as an FAQ id.
router = APIRouter(prefix="/api/v1/faqs/categories", tags=["faqs"])
_service = CategoryService()


def category_public(category: FaqCategory, faq_count: int) -> CategoryPublic:
    """The API view of a category row."""
    return CategoryPublic(
        id=category.id,
        user_id=category.owner_id,
        name=category.name,
        description=category.description,
        position=category.position,
        faq_count=faq_count,
        created_at=category.created_at,
        updated_at=category.updated_at,
    )


def owner_of(category_id: str) -> Select[str]:
    """Selects the owner of an FAQ category (for service keys acting on it by id)."""
    return select(FaqCategory.owner_id).where(FaqCategory.id == category_id)


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors_doc(401, 403, 409, 422))
async def create_category(
    body: CategoryCreate,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> CategoryPublic:
    """Create an FAQ category (names are unique per owner)."""
    owner = await c.auth.acting_user_of(db, principal, user_id, body.user_id)
    return category_public(await _service.create(db, owner, body), 0)


@router.get("", responses=errors_doc(401, 403, 422))
async def list_categories(
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    page: PageDep,
    user_id: ActAs = None,
) -> CategoryList:
    """The caller's FAQ categories by position, then name, with their FAQ counts."""
    owner = await c.auth.acting_user(db, principal, user_id)
    rows, total = await _service.list_categories(db, owner, page)
    return CategoryList(
        items=[category_public(cat, n) for cat, n in rows],
        total=total,
        page=page.page,
        limit=page.limit,
        pages=page.pages(total),
    )


@router.get("/{category_id}", responses=errors_doc(401, 403, 404))
async def get_category(
    category_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> CategoryPublic:
    """One of the caller's FAQ categories."""
    owner = await c.auth.acting_owner(db, principal, owner_of(category_id), user_id)
    category = await _service.get(db, owner, category_id)
    return category_public(category, await _service.faq_count(db, category.id))


@router.patch("/{category_id}", responses=errors_doc(401, 403, 404, 409, 422))
@router.put(
    "/{category_id}",
    responses=errors_doc(401, 403, 404, 409, 422),
    description="The same partial update as PATCH: only the fields sent change.",
)
async def update_category(
    category_id: str,
    body: CategoryUpdate,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> CategoryPublic:
    """Rename, describe or reorder a category; its FAQs follow a new name."""
    owner = await c.auth.acting_owner(db, principal, owner_of(category_id), user_id)
    category = await _service.update(db, owner, category_id, body)
    return category_public(category, await _service.faq_count(db, category.id))


@router.delete(
    "/{category_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors_doc(401, 403, 404)
)
async def delete_category(
    category_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> Response:
    """Delete a category; its FAQs stay, without a category."""
    owner = await c.auth.acting_owner(db, principal, owner_of(category_id), user_id)
    await _service.delete(db, owner, category_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
