"""Keeps an outside vector store (Qdrant) in step with the chunk rows of the database.

Queued each time the job queue starts (a background job, so start-up does not wait for it):
it deletes points whose row is gone (older than the grace period, so points of transactions
still open are spared) and gives every chunk row without a point one, embedding its stored
text again. The second half is also how an existing installation moves to Qdrant: set
``BOTGPT_VECTOR_STORE=qdrant`` and restart; keyword search works meanwhile.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from botgpt.documents.chunking import embedding_input
from botgpt.documents.ingest import Ingestor
from botgpt.jobs.queue import JobQueue

log = logging.getLogger("botgpt.vector_sync")
VECTOR_SYNC_JOB = "vectors.sync"
_SCAN = 1000  # chunk ids checked per round trip

_IDS_SQL = text("SELECT id FROM chunks WHERE id > :after ORDER BY id LIMIT :n")
_ROWS_SQL = text(
    "SELECT id, owner_id, document_id, heading, text FROM chunks WHERE id IN :ids ORDER BY id"
).bindparams(bindparam("ids", expanding=True))


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one synchronisation changed."""

    orphans_removed: int
    points_added: int


class VectorSync:
    """The synchronisation job; registered only when an outside vector store is configured."""

    def __init__(self, engine: AsyncEngine, ingestor: Ingestor, queue: JobQueue) -> None:
        self.engine = engine
        self.ingestor = ingestor
        self.queue = queue
        if ingestor.indexes.vectors is not None:
            queue.register(VECTOR_SYNC_JOB, self._handle)
            queue.on_start(self.schedule)

    async def schedule(self) -> None:
        """Queue one synchronisation."""
        await self.queue.enqueue(VECTOR_SYNC_JOB, {})

    async def _handle(self, payload: dict[str, Any]) -> None:
        await self.run()

    async def run(self) -> SyncReport:
        """Delete orphan points, then add the missing ones."""
        removed = await self.ingestor.indexes.sweep(self.engine)
        added = await self.backfill()
        if added:
            log.info("indexed %d chunks that had no vector in the outside store", added)
        return SyncReport(removed, added)

    async def backfill(self) -> int:
        """Embed and write the vectors of chunk rows that have no point; returns how many."""
        vectors = self.ingestor.indexes.vectors
        if vectors is None:
            return 0
        embedder = self.ingestor.embedder
        batch = self.ingestor.settings.embedding_batch_size
        added, after = 0, ""
        while True:
            async with self.engine.connect() as conn:
                ids = [row[0] for row in await conn.execute(_IDS_SQL, {"after": after, "n": _SCAN})]
                if not ids:
                    return added
                after = ids[-1]
                missing = sorted(await vectors.missing(ids))
                rows = (await conn.execute(_ROWS_SQL, {"ids": missing})).all() if missing else []
            for start in range(0, len(rows), batch):
                part = rows[start : start + batch]
                embedded = await embedder.embed([embedding_input(r[3], r[4]) for r in part])
                await vectors.upsert(
                    [(r[0], r[1], r[2], v) for r, v in zip(part, embedded, strict=True)],
                    embedder.dimension,
                )
                added += len(part)
