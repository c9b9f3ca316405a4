"""Which chunk index the app uses: the database's own, or the database plus Qdrant.

One ``ChunkIndexes`` is built from the settings and handed to ingestion, re-embedding,
search and erasure, which bind it to their connection per transaction (``bind``); none of
them names a store.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from botgpt.retrieval.stores import ChunkIndex, chunk_index_for

if TYPE_CHECKING:
    from botgpt.retrieval.qdrant_store import QdrantVectors

log = logging.getLogger("botgpt.qdrant")


class ChunkIndexes:
    """Binds the configured chunk index to a connection or session."""

    def __init__(self, vectors: QdrantVectors | None = None) -> None:
        self.vectors = vectors

    @property
    def store(self) -> str:
        """Where vectors are searched: 'database' or 'qdrant'."""
        return "database" if self.vectors is None else "qdrant"

    def bind(self, db: Any, *, dimension: int = 384) -> ChunkIndex:
        """The index inside ``db``'s transaction (an AsyncConnection or AsyncSession)."""
        index = chunk_index_for(db, dimension=dimension)
        if self.vectors is None:
            return index
        from botgpt.retrieval.qdrant_store import QdrantChunkIndex

        return QdrantChunkIndex(index, self.vectors)

    async def forget_owner(self, owner_id: str) -> None:
        """Drop what lives outside the database for an owner whose rows are already gone.

        A failure leaves orphan points (never shown) to the sweep: it is logged, not raised.
        """
        if self.vectors is None:
            return
        try:
            await self.vectors.delete_owner(owner_id)
        except Exception:
            log.warning("Qdrant points of an erased owner left to the sweep", exc_info=True)

    async def sweep(self, engine: AsyncEngine) -> int:
        """Remove vectors outside the database whose chunk rows are gone; returns how many."""
        if self.vectors is None:
            return 0
        return await self.vectors.sweep_orphans(engine)

    async def drop(self) -> None:
        """Delete the outside store's collection (throwaway evaluations only)."""
        if self.vectors is not None:
            await self.vectors.drop()

    async def close(self) -> None:
        """Release the connection to an outside vector store."""
        if self.vectors is not None:
            await self.vectors.close()
