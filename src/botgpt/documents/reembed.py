"""Background re-embedding after the embedding model changes, without taking documents offline.

A ready document indexed with another model (of the same vector size) keeps its status and
stays searchable while its chunks' stored texts are embedded again in batches; the new
vectors replace the old ones in one transaction per document. Parsing and chunking are not
repeated. Keyword search is unaffected throughout.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from botgpt.documents.chunking import embedding_input
from botgpt.documents.embedding import index_dimension
from botgpt.documents.ingest import Ingestor
from botgpt.documents.models import READY, Document
from botgpt.ids import utcnow
from botgpt.jobs.queue import JobQueue

log = logging.getLogger("botgpt.reembed")
REEMBED_JOB = "documents.reembed"
_documents = cast(Table, Document.__table__)


class Reembedder:
    """Finds documents embedded with another model and re-embeds them in place."""

    def __init__(self, engine: AsyncEngine, ingestor: Ingestor, queue: JobQueue) -> None:
        self.engine = engine
        self.ingestor = ingestor
        self.queue = queue
        queue.register(REEMBED_JOB, self._handle)
        queue.on_start(self.queue_stale)

    @property
    def model(self) -> str:
        """Name of the configured embedding model."""
        return self.ingestor.embedder.name

    async def queue_stale(self) -> list[str]:
        """Queue every ready document embedded with another model; returns their ids."""
        async with self.engine.connect() as conn:
            dimension = await index_dimension(conn)
            rows = await conn.execute(
                select(_documents.c.id).where(
                    _documents.c.status == READY, _documents.c.embedding_model != self.model
                )
            )
            stale = [row[0] for row in rows]
        if stale and dimension not in (None, self.ingestor.embedder.dimension):
            log.error(
                "%d documents need re-embedding but the index holds %s-d vectors and the "
                "model makes %s-d ones; rebuild the index",
                len(stale),
                dimension,
                self.ingestor.embedder.dimension,
            )
            return []
        for document_id in stale:
            await self.queue.enqueue(REEMBED_JOB, {"document_id": document_id})
        if stale:
            log.info("re-embedding %d documents with %s", len(stale), self.model)
        return stale

    async def _handle(self, payload: dict[str, Any]) -> None:
        await self.reembed(str(payload["document_id"]))

    async def reembed(self, document_id: str) -> int:
        """Re-embed one document's chunks with the current model; returns chunks updated."""
        async with self.engine.connect() as conn:
            texts = await self.ingestor.index(conn).chunk_texts(document_id)
        batch = self.ingestor.settings.embedding_batch_size
        vectors: list[tuple[str, Any]] = []
        for offset in range(0, len(texts), batch):
            part = texts[offset : offset + batch]
            inputs = [embedding_input(heading, body) for _, heading, body in part]
            embedded = await self.ingestor.batcher.embed(inputs)
            vectors += [(chunk_id, v) for (chunk_id, _, _), v in zip(part, embedded, strict=True)]
        async with self.engine.begin() as conn:
            await self.ingestor.index(conn).replace_embeddings(vectors, embedding_model=self.model)
            await conn.execute(
                update(_documents)
                .where(_documents.c.id == document_id, _documents.c.status == READY)
                .values(embedding_model=self.model, updated_at=utcnow())
            )
        return len(vectors)
