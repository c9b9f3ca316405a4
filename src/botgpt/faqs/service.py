"""FAQs: create, list, get, update, delete, semantic search, and the best match for a question.

Each FAQ stores its question's embedding (float32 bytes). FAQ sets are small (at most
`MAX_FAQS_PER_OWNER` per owner), so search loads the owner's active vectors and ranks them
by cosine similarity with numpy; that works the same on SQLite and PostgreSQL. Vectors made
by another embedding model (or of another size) are re-embedded when a search meets them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from botgpt.exceptions import Conflict, NotFound, ServiceUnavailable
from botgpt.faqs.categories import CategoryService
from botgpt.faqs.models import ACTIVE, Faq
from botgpt.faqs.schemas import FaqCreate, FaqUpdate
from botgpt.ids import utcnow
from botgpt.pagination import Page
from botgpt.retrieval.embedders import Embedder, EmbeddingError

log = logging.getLogger("botgpt.faqs")

MAX_FAQS_PER_OWNER = 5_000
# The cosine a question must reach for `best_match` to answer it from an FAQ by default.
DEFAULT_MATCH_SCORE = 0.6
# The cosine below which the search API leaves FAQs out by default.
DEFAULT_SEARCH_SCORE = 0.25
_DTYPE = np.dtype("<f4")


@dataclass(frozen=True, slots=True)
class FaqFilters:
    """Optional exact-match filters of a list or search."""

    status: str | None = None
    category: str | None = None
    language: str | None = None


def encode_vector(vector: NDArray[np.float32]) -> bytes:
    """The stored form of a vector: little-endian float32 bytes."""
    return np.asarray(vector, dtype=_DTYPE).tobytes()


def decode_vector(blob: bytes) -> NDArray[np.float32]:
    """A stored vector back as a float32 array."""
    return np.frombuffer(blob, dtype=_DTYPE).astype(np.float32)


class FaqService:
    """The FAQs of each owner; another owner's FAQ is reported as missing."""

    def __init__(
        self,
        embedder: Embedder,
        sessions: async_sessionmaker[AsyncSession],
        max_per_owner: int = MAX_FAQS_PER_OWNER,
    ) -> None:
        self.embedder = embedder
        self.sessions = sessions
        self.max_per_owner = max_per_owner
        self.categories = CategoryService()

    # -- embedding --------------------------------------------------------------------------
    async def _embed_questions(self, questions: Sequence[str]) -> list[bytes]:
        try:
            vectors = await self.embedder.embed(list(questions))
        except EmbeddingError as exc:
            raise ServiceUnavailable("The embedding model is unavailable right now.") from exc
        return [encode_vector(v) for v in vectors]

    async def _embed_query(self, text: str) -> NDArray[np.float32]:
        try:
            return await self.embedder.embed_query(text)
        except EmbeddingError as exc:
            raise ServiceUnavailable("The embedding model is unavailable right now.") from exc

    def _is_current(self, blob: bytes, model: str) -> bool:
        return model == self.embedder.name and len(blob) == self.embedder.dimension * 4

    # -- write ------------------------------------------------------------------------------
    async def create(self, db: AsyncSession, owner_id: str, body: FaqCreate) -> Faq:
        """Store a new FAQ with its question embedded (409 when the owner has too many)."""
        await self._check_room(db, owner_id)
        await db.commit()  # free the connection while the question is embedded
        (embedding,) = await self._embed_questions([body.question])
        category = await self.categories.resolve(
            db, owner_id, name=body.category, category_id=body.category_id
        )
        faq = Faq(
            owner_id=owner_id,
            question=body.question,
            answer=body.answer,
            category=category.name if category else None,
            category_id=category.id if category else None,
            priority=body.priority,
            view_count=0,
            helpful_count=0,
            not_helpful_count=0,
            tags=list(body.tags),
            language=body.language,
            status=body.status,
            hits=0,
            embedding=embedding,
            embedding_model=self.embedder.name,
        )
        db.add(faq)
        await db.commit()
        log.info("faq created", extra={"faq_id": faq.id})
        return faq

    async def _check_room(self, db: AsyncSession, owner_id: str) -> None:
        count = await db.execute(select(func.count()).where(Faq.owner_id == owner_id))
        if int(count.scalar_one()) >= self.max_per_owner:
            raise Conflict(
                f"An owner may keep at most {self.max_per_owner} FAQs; delete some first.",
                details={"limit": self.max_per_owner},
            )

    async def update(self, db: AsyncSession, owner_id: str, faq_id: str, body: FaqUpdate) -> Faq:
        """Apply the fields sent; a changed question is embedded again."""
        faq = await self.get(db, owner_id, faq_id)
        changes = body.model_dump(exclude_unset=True)
        question = changes.get("question")
        if question is not None and (
            question != faq.question or not self._is_current(faq.embedding, faq.embedding_model)
        ):
            (faq.embedding,) = await self._embed_questions([question])
            faq.embedding_model = self.embedder.name
        if "category" in changes or "category_id" in changes:
            category = await self.categories.resolve(
                db,
                owner_id,
                name=changes.pop("category", None),
                category_id=changes.pop("category_id", None),
            )
            faq.category = category.name if category else None
            faq.category_id = category.id if category else None
            faq.updated_at = utcnow()
        for field, value in changes.items():
            setattr(faq, field, list(value) if field == "tags" else value)
        if changes:
            faq.updated_at = utcnow()
        await db.commit()
        return faq

    async def record_view(self, db: AsyncSession, owner_id: str, faq_id: str) -> Faq:
        """One of the owner's FAQs, counting this read as a view."""
        faq = await self.get(db, owner_id, faq_id)
        await self._bump(db, faq, Faq.view_count)
        return faq

    async def record_feedback(
        self, db: AsyncSession, owner_id: str, faq_id: str, helpful: bool
    ) -> Faq:
        """Count a reader's helpful / not helpful verdict on the FAQ."""
        faq = await self.get(db, owner_id, faq_id)
        await self._bump(db, faq, Faq.helpful_count if helpful else Faq.not_helpful_count)
        return faq

    async def _bump(self, db: AsyncSession, faq: Faq, counter: Any) -> None:
        # An UPDATE of column + 1, so concurrent readers never lose a count.
        await db.execute(
            update(Faq)
            .where(Faq.id == faq.id)
            .values({counter: counter + 1})
            .execution_options(synchronize_session=False)
        )
        await db.commit()
        await db.refresh(faq)

    async def delete(self, db: AsyncSession, owner_id: str, faq_id: str) -> None:
        """Delete one of the owner's FAQs."""
        faq = await self.get(db, owner_id, faq_id)
        await db.delete(faq)
        await db.commit()
        log.info("faq deleted", extra={"faq_id": faq_id})

    # -- read -------------------------------------------------------------------------------
    async def get(self, db: AsyncSession, owner_id: str, faq_id: str) -> Faq:
        """One of the owner's FAQs; anyone else's is reported as missing."""
        faq = await db.get(Faq, faq_id)
        if faq is None or faq.owner_id != owner_id:
            raise NotFound("FAQ not found.")
        return faq

    async def list_faqs(
        self, db: AsyncSession, owner_id: str, page: Page, filters: FaqFilters
    ) -> tuple[list[Faq], int]:
        """The owner's FAQs matching the filters, by priority then newest, with the total."""
        where = _conditions(owner_id, filters)
        total = int((await db.execute(select(func.count()).where(*where))).scalar_one())
        rows = await db.execute(
            select(Faq)
            .where(*where)
            .order_by(Faq.priority.desc(), Faq.created_at.desc(), Faq.id.desc())
            .offset(page.offset)
            .limit(page.limit)
        )
        return list(rows.scalars()), total

    async def search(
        self,
        db: AsyncSession,
        owner_id: str,
        query: str,
        *,
        limit: int = 5,
        min_score: float = DEFAULT_SEARCH_SCORE,
        category: str | None = None,
        language: str | None = None,
    ) -> list[tuple[Faq, float]]:
        """The owner's active FAQs whose question is most similar to `query`, best first."""
        await db.commit()  # free the connection while the query is embedded
        vector = await self._embed_query(query)
        filters = FaqFilters(ACTIVE, category, language)
        return await self._rank(db, owner_id, vector, filters, limit, min_score)

    async def best_match(
        self, owner_id: str, question: str, min_score: float = DEFAULT_MATCH_SCORE
    ) -> tuple[Faq, float] | None:
        """The owner's active FAQ closest to `question` if its cosine reaches `min_score`.

        Meant for answering a chat message from an FAQ without the model: a match counts as
        a use of the FAQ (its `hits` go up by one). Returns None when nothing is close enough.
        """
        if not question.strip():
            return None
        vector = await self._embed_query(question)
        async with self.sessions() as db:
            found = await self._rank(db, owner_id, vector, FaqFilters(ACTIVE), 1, min_score)
            if not found:
                return None
            faq, score = found[0]
            await db.execute(
                update(Faq)
                .where(Faq.id == faq.id)
                .values(hits=Faq.hits + 1)
                .execution_options(synchronize_session=False)
            )
            await db.commit()
            await db.refresh(faq)
            return faq, score

    async def _rank(
        self,
        db: AsyncSession,
        owner_id: str,
        vector: NDArray[np.float32],
        filters: FaqFilters,
        limit: int,
        min_score: float,
    ) -> list[tuple[Faq, float]]:
        """Score the matching FAQs' stored vectors against `vector` and load the best."""
        rows = (
            await db.execute(
                select(Faq.id, Faq.embedding, Faq.embedding_model)
                .where(*_conditions(owner_id, filters))
                .order_by(Faq.created_at, Faq.id)
            )
        ).all()
        if not rows:
            return []
        ids = [row.id for row in rows]
        blobs = {row.id: row.embedding for row in rows}
        stale = [row.id for row in rows if not self._is_current(row.embedding, row.embedding_model)]
        if stale:
            for faq_id in stale:
                del blobs[faq_id]
            blobs.update(await self._refresh(db, stale))
            ids = [i for i in ids if i in blobs]  # a stale FAQ deleted meanwhile drops out
            if not ids:
                return []
        matrix = np.stack([decode_vector(blobs[i]) for i in ids])
        scores = matrix @ np.asarray(vector, dtype=np.float32)
        order = [int(i) for i in np.argsort(-scores, kind="stable") if scores[i] >= min_score]
        best = {ids[i]: float(scores[i]) for i in order[:limit]}
        if not best:
            return []
        loaded = await db.execute(select(Faq).where(Faq.id.in_(list(best))))
        faqs = {faq.id: faq for faq in loaded.scalars()}
        return [(faqs[i], round(s, 6)) for i, s in best.items() if i in faqs]

    async def _refresh(self, db: AsyncSession, faq_ids: list[str]) -> dict[str, bytes]:
        """Embed these FAQs' questions with the current model and store the vectors."""
        rows = (await db.execute(select(Faq.id, Faq.question).where(Faq.id.in_(faq_ids)))).all()
        blobs = await self._embed_questions([row.question for row in rows])
        for row, blob in zip(rows, blobs, strict=True):
            # Only if the question is still the one embedded (an update may have raced us).
            await db.execute(
                update(Faq)
                .where(Faq.id == row.id, Faq.question == row.question)
                .values(embedding=blob, embedding_model=self.embedder.name)
                .execution_options(synchronize_session=False)
            )
        await db.commit()
        log.info("faqs re-embedded", extra={"count": len(rows), "model": self.embedder.name})
        return {row.id: blob for row, blob in zip(rows, blobs, strict=True)}


def _conditions(owner_id: str, filters: FaqFilters) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [Faq.owner_id == owner_id]
    if filters.status is not None:
        where.append(Faq.status == filters.status)
    if filters.category is not None:
        where.append(Faq.category == filters.category)
    if filters.language is not None:
        where.append(Faq.language == filters.language)
    return where
