"""FAQ categories: one owner's named groups of FAQs, created explicitly or by naming one."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from botgpt.exceptions import Conflict, NotFound
from botgpt.faqs.models import Faq, FaqCategory
from botgpt.faqs.schemas import CategoryCreate, CategoryUpdate
from botgpt.ids import utcnow
from botgpt.pagination import Page


class CategoryService:
    """Categories of each owner; another owner's category is reported as missing."""

    async def create(self, db: AsyncSession, owner_id: str, body: CategoryCreate) -> FaqCategory:
        """A new category (409 when the owner already has one of that name)."""
        category = FaqCategory(
            owner_id=owner_id, name=body.name, description=body.description, position=body.position
        )
        db.add(category)
        await self._commit_unique(db, body.name)
        return category

    async def get(self, db: AsyncSession, owner_id: str, category_id: str) -> FaqCategory:
        """One of the owner's categories."""
        category = await db.get(FaqCategory, category_id)
        if category is None or category.owner_id != owner_id:
            raise NotFound("FAQ category not found.")
        return category

    async def list_categories(
        self, db: AsyncSession, owner_id: str, page: Page
    ) -> tuple[list[tuple[FaqCategory, int]], int]:
        """The owner's categories by position then name, each with its FAQ count."""
        where = FaqCategory.owner_id == owner_id
        total = int((await db.execute(select(func.count()).where(where))).scalar_one())
        counts = (
            select(Faq.category_id, func.count().label("n"))
            .where(Faq.owner_id == owner_id)
            .group_by(Faq.category_id)
            .subquery()
        )
        rows = await db.execute(
            select(FaqCategory, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.category_id == FaqCategory.id)
            .where(where)
            .order_by(FaqCategory.position, FaqCategory.name, FaqCategory.id)
            .offset(page.offset)
            .limit(page.limit)
        )
        return [(category, int(n)) for category, n in rows.all()], total

    async def faq_count(self, db: AsyncSession, category_id: str) -> int:
        """How many FAQs are in the category."""
        query = select(func.count()).where(Faq.category_id == category_id)
        return int((await db.execute(query)).scalar_one())

    async def update(
        self, db: AsyncSession, owner_id: str, category_id: str, body: CategoryUpdate
    ) -> FaqCategory:
        """Apply the fields sent; a new name is written to the category's FAQs too."""
        category = await self.get(db, owner_id, category_id)
        changes = body.model_dump(exclude_unset=True)
        for field, value in changes.items():
            setattr(category, field, value)
        if "name" in changes:
            await db.execute(
                update(Faq)
                .where(Faq.category_id == category.id)
                .values(category=category.name)
                .execution_options(synchronize_session=False)
            )
        if changes:
            category.updated_at = utcnow()
        await self._commit_unique(db, category.name)
        return category

    async def delete(self, db: AsyncSession, owner_id: str, category_id: str) -> None:
        """Delete a category; its FAQs stay, without a category."""
        category = await self.get(db, owner_id, category_id)
        await db.execute(
            update(Faq)
            .where(Faq.category_id == category.id)
            .values(category=None, category_id=None)
            .execution_options(synchronize_session=False)
        )
        await db.delete(category)
        await db.commit()

    async def resolve(
        self, db: AsyncSession, owner_id: str, *, name: str | None, category_id: str | None
    ) -> FaqCategory | None:
        """The category an FAQ names: by id (must exist), else by name (created when new)."""
        if category_id is not None:
            return await self.get(db, owner_id, category_id)
        if name is None:
            return None
        found = await db.execute(
            select(FaqCategory).where(FaqCategory.owner_id == owner_id, FaqCategory.name == name)
        )
        category = found.scalar_one_or_none()
        if category is None:
            category = FaqCategory(owner_id=owner_id, name=name, position=0)
            db.add(category)
            await db.flush()
        return category

    async def _commit_unique(self, db: AsyncSession, name: str) -> None:
        try:
            await db.commit()
        except IntegrityError as exc:
            await db.rollback()
            raise Conflict(f"A category named {name!r} already exists.") from exc
