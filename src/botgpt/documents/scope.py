"""The documents a grounded conversation answers from: readiness checks and scoped search.

The chat turn calls ``check_ready`` when a grounded conversation is created (or its documents
change) and ``search`` on every turn. Search is always filtered by the owner and the
documents in scope; ``search`` also drops passages below the relevance floor
(``BOTGPT_SEARCH_MIN_SCORE``) so the bot can say it found nothing instead of inventing.
Which documents a conversation uses is the conversations domain's business
(``botgpt.conversations.links``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from botgpt.config import Settings
from botgpt.db import has_spare_connection
from botgpt.documents.embedding import LazyEmbedder
from botgpt.documents.models import FAILED, READY, Document
from botgpt.exceptions import Conflict, InvalidInput, NotFound
from botgpt.retrieval.hybrid import Hit
from botgpt.retrieval.indexes import ChunkIndexes
from botgpt.retrieval.search import HybridSearcher, SearchMode, SearchParams

MAX_SCOPE = 100


@dataclass(frozen=True, slots=True)
class Passage:
    """A search hit with the name of the document it comes from."""

    hit: Hit
    filename: str


def _status_entry(doc: Document) -> dict[str, object]:
    return {
        "document_id": doc.id,
        "filename": doc.filename,
        "status": doc.status,
        "progress": round(doc.progress, 3),
        "error_code": doc.error_code,
        "error_message": doc.error_message,
    }


class DocumentScope:
    """Readiness and search over an owner's documents; one instance per app."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        embedder: LazyEmbedder,
        indexes: ChunkIndexes | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.embedder = embedder
        self.indexes = indexes or ChunkIndexes()

    def params(self, mode: SearchMode | None = None) -> SearchParams:
        """Search parameters from the settings."""
        return SearchParams(
            mode=mode or "hybrid",
            rrf_k=self.settings.rrf_k,
            keyword_weight=self.settings.hybrid_keyword_weight,
            vector_weight=self.settings.hybrid_vector_weight,
        )

    async def _load(self, owner_id: str, document_ids: Sequence[str]) -> list[Document]:
        ids = list(dict.fromkeys(document_ids))
        if len(ids) > MAX_SCOPE:
            raise InvalidInput(f"At most {MAX_SCOPE} documents can be in scope.")
        if not ids:
            return []
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(Document.__table__).where(
                        Document.id.in_(ids), Document.owner_id == owner_id
                    )
                )
            ).all()
        found = {row.id: Document(**row._mapping) for row in rows}
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFound("Document not found.", details={"document_ids": missing})
        return [found[i] for i in ids]

    async def check_owned(self, owner_id: str, document_ids: Sequence[str]) -> list[Document]:
        """The owner's documents in any state; NotFound names the ids that are not theirs."""
        return await self._load(owner_id, document_ids)

    async def check_ready(self, owner_id: str, document_ids: Sequence[str]) -> list[Document]:
        """The owner's documents, all ready; else NotFound, InvalidInput (failed) or Conflict."""
        docs = await self._load(owner_id, document_ids)
        failed = [d for d in docs if d.status == FAILED]
        if failed:
            raise InvalidInput(
                "Some documents could not be processed; remove them from the conversation or "
                "upload them again.",
                details={"documents": [_status_entry(d) for d in failed]},
            )
        pending = [d for d in docs if d.status != READY]
        if pending:
            raise Conflict(
                "Some documents are still being processed; try again when they are ready.",
                details={"documents": [_status_entry(d) for d in pending]},
            )
        return docs

    async def search(
        self,
        owner_id: str,
        document_ids: Sequence[str],
        query: str,
        k: int,
        *,
        mode: SearchMode | None = None,
        min_score: float | None = None,
    ) -> list[Hit]:
        """Relevant passages of the owner's ready documents in scope, best first.

        A passage counts as relevant when its cosine similarity to the query reaches
        ``min_score`` (default ``BOTGPT_SEARCH_MIN_SCORE``); passages found only by keyword are
        kept when at least one passage passed that bar. An empty list means "not in the docs".
        """
        ready = await self._ready_ids(owner_id, document_ids)
        if not ready:
            return []
        hits = await self._hits(owner_id, ready, query, k, mode)
        floor = self.settings.search_min_score if min_score is None else min_score
        passed = [h for h in hits if h.vector_score is not None and h.vector_score >= floor]
        if not passed:
            return []
        return [h for h in hits if h.vector_score is None or h.vector_score >= floor]

    async def passages(
        self,
        owner_id: str,
        query: str,
        *,
        document_ids: Sequence[str] | None = None,
        k: int = 5,
        mode: SearchMode | None = None,
    ) -> list[Passage]:
        """Ranked passages for the search API: the given documents (all ready) or all ready ones."""
        if document_ids is not None:
            ids = [d.id for d in await self.check_ready(owner_id, document_ids)]
        else:
            ids = await self._ready_ids(owner_id, None)
        if not ids:
            return []
        hits = await self._hits(owner_id, ids, query, k, mode)
        names = await self.filenames(owner_id, {h.document_id for h in hits})
        return [Passage(h, names.get(h.document_id, "")) for h in hits]

    async def filenames(self, owner_id: str, document_ids: set[str]) -> dict[str, str]:
        """File names of the owner's documents by id."""
        if not document_ids:
            return {}
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(Document.id, Document.filename).where(
                    Document.id.in_(document_ids), Document.owner_id == owner_id
                )
            )
            return {row.id: row.filename for row in rows}

    async def _ready_ids(self, owner_id: str, document_ids: Sequence[str] | None) -> list[str]:
        query = select(Document.id).where(Document.owner_id == owner_id, Document.status == READY)
        if document_ids is not None:
            if not document_ids:
                return []
            query = query.where(Document.id.in_(list(dict.fromkeys(document_ids))))
        async with self.engine.connect() as conn:
            return [row.id for row in await conn.execute(query)]

    async def _hits(
        self,
        owner_id: str,
        document_ids: list[str],
        query: str,
        k: int,
        mode: SearchMode | None,
    ) -> list[Hit]:
        params = self.params(mode)
        dimension = self.embedder.dimension
        async with self.engine.connect() as conn:
            index = self.indexes.bind(conn, dimension=dimension)
            if (mode or params.mode) != "hybrid" or not has_spare_connection(self.engine):
                searcher = HybridSearcher(index, self.embedder, params)
                return await searcher.search(query, owner_id, document_ids, k, mode=mode)
            # The keyword and vector queries run at once on two connections (SQLite's run in
            # two threads: at 100k chunks 8.4 ms instead of 10.4 for one owner), when the pool
            # has a connection to spare.
            async with self.engine.connect() as second:
                searcher = HybridSearcher(
                    index,
                    self.embedder,
                    params,
                    vector_index=self.indexes.bind(second, dimension=dimension),
                )
                return await searcher.search(query, owner_id, document_ids, k, mode=mode)


# --------------------------------------------------------------------------- conversation scope
