"""Ingestion as a job: parse -> chunk -> embed in batches -> index, with status and progress.

Every run starts by deleting whatever chunks the document already has, so a run that was cut
short (crash, stop) is simply redone: ``resume_interrupted`` (a start hook of the job queue)
puts every document left in progress back to ``queued``. The database refuses chunks of a
deleted document (migration 0003), so a delete racing an ingestion leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from botgpt.config import Settings
from botgpt.documents.batcher import EmbeddingBatcher
from botgpt.documents.chunking import (
    Chunk,
    chunk_document,
    chunk_record,
    embedding_text,
)
from botgpt.documents.embedding import LazyEmbedder, index_dimension
from botgpt.documents.errors import ParseError
from botgpt.documents.group_writer import GroupWriter
from botgpt.documents.limits import ParseLimits
from botgpt.documents.models import (
    CHUNKING,
    EMBEDDING,
    FAILED,
    IN_PROGRESS,
    PARSING,
    QUEUED,
    READY,
    Document,
)
from botgpt.documents.parsing import ParsedDocument
from botgpt.documents.sandbox import ParseBudget, ParseCancelled, parse_bounded
from botgpt.documents.storage import BlobNotFound, BlobStore
from botgpt.events import EventSink, no_events
from botgpt.ids import new_id, utcnow
from botgpt.jobs.queue import JobQueue
from botgpt.observability import metrics
from botgpt.retrieval.embedders import EmbeddingError, Vectors, available_cores
from botgpt.retrieval.indexes import ChunkIndexes
from botgpt.retrieval.stores import ChunkIndex, ChunkRecord

log = logging.getLogger("botgpt.ingest")

INGEST_JOB = "ingest_document"
MAX_ATTEMPTS = 3  # runs started without finishing before a document is failed for good

# Documents from this size on are ingested at most this many at a time (per process).
LARGE_DOCUMENT_BYTES = 1024 * 1024
LARGE_DOCUMENTS_AT_ONCE = 2

# Progress milestones (0..1) of the stages; embedding fills the span up to EMBEDDED.
PARSED, CHUNKED, EMBEDDED = 0.1, 0.15, 0.98

ProgressCallback = Callable[[str, float], None]
_documents = cast(Table, Document.__table__)


class _Failure(Exception):
    """An ingestion failure with a stable code and a message the user can act on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Gone(Exception):
    """The document was deleted while it was being ingested."""


# --------------------------------------------------------------------------- the job


class Ingestor:
    """Runs ingestion jobs for documents; one instance per process, shared embedder."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        blobs: BlobStore,
        embedder: LazyEmbedder,
        queue: JobQueue,
        indexes: ChunkIndexes | None = None,
    ) -> None:
        self.settings = settings
        self.indexes = indexes or ChunkIndexes()
        self.engine = engine
        self.blobs = blobs
        self.embedder = embedder
        self.queue = queue
        self.batcher = EmbeddingBatcher(embedder, settings.ingest_batch_chunks)
        self.writer = GroupWriter(engine, refusals=(_Gone,))
        self._parse_slots = asyncio.Semaphore(available_cores())
        self._large_slots = asyncio.Semaphore(LARGE_DOCUMENTS_AT_ONCE)
        self.on_event: EventSink = no_events  # webhooks subscribe here
        self._pending: set[str] = set()  # enqueued by this process, not started yet
        self._running: set[str] = set()
        self._cancelled: set[str] = set()  # deleted while running here: stop at once
        self._index_dimension: int | None = None
        queue.register(INGEST_JOB, self._handle)
        queue.on_start(self.resume_interrupted)

    def index(self, conn: AsyncConnection) -> ChunkIndex:
        """The chunk index bound to ``conn``'s transaction."""
        return self.indexes.bind(conn, dimension=self.embedder.dimension)

    async def enqueue(self, document_id: str) -> None:
        """Queue the ingestion of a document (status must be ``queued``)."""
        self._pending.add(document_id)
        try:
            await self.queue.enqueue(INGEST_JOB, {"document_id": document_id})
        except BaseException:
            self._pending.discard(document_id)
            raise

    def cancel(self, document_id: str) -> None:
        """Stop this process's run of a deleted document (other processes notice by polling)."""
        if document_id in self._running:
            self._cancelled.add(document_id)

    def budget(self) -> ParseBudget:
        """What parsing one document may cost, from the settings."""
        s = self.settings
        limits = ParseLimits(
            max_pages=s.parse_max_pages,
            max_paragraphs=s.parse_max_paragraphs,
            max_chars=s.parse_max_chars,
            max_unpacked_bytes=int(s.parse_max_unpacked_mb * 1024 * 1024),
            max_compression_ratio=s.parse_max_compression_ratio,
            max_html_depth=s.parse_max_html_depth,
        )
        return ParseBudget(limits, s.parse_timeout_seconds, s.parse_max_memory_mb)

    def busy(self, document_id: str) -> bool:
        """Whether this process has the document queued or running."""
        return document_id in self._pending or document_id in self._running

    async def _handle(self, payload: dict[str, Any]) -> None:
        document_id = str(payload["document_id"])
        if payload.get("redelivered") and not self.busy(document_id):
            # The worker that had this job died mid-way: take the document back to queued.
            await self._requeue(document_id)
        await self.run(document_id)

    # -- one run ----------------------------------------------------------------------------
    async def run(self, document_id: str, on_progress: ProgressCallback | None = None) -> str:
        """Ingest one queued document; returns its final status (or '' if it was not queued)."""
        self._pending.discard(document_id)
        self._running.add(document_id)
        try:
            return await self._run(document_id, on_progress)
        finally:
            self._running.discard(document_id)
            self._cancelled.discard(document_id)

    async def _run(self, document_id: str, on_progress: ProgressCallback | None) -> str:
        doc = await self._claim(document_id)
        if doc is None:
            return ""
        started = time.perf_counter()

        def report(status: str, progress: float) -> None:
            if on_progress is not None:
                on_progress(status, progress)

        try:
            if doc["attempts"] > MAX_ATTEMPTS:
                raise _Failure(
                    "ingestion_interrupted",
                    "Processing was interrupted several times and has been stopped. Upload the "
                    "file again to retry; if it keeps failing, contact the administrator.",
                )
            report(PARSING, 0.0)
            # Many small documents run at once (their chunks share model calls); large ones
            # take turns, so their texts do not all sit in memory together.
            large = doc["size_bytes"] >= LARGE_DOCUMENT_BYTES
            async with self._large_slots if large else contextlib.nullcontext():
                parsed = await self._parse(doc)
                pages = len(parsed.pages)
                report(CHUNKING, PARSED)
                chunks = await self._chunk(parsed)
                del parsed
                await self._check_dimension()
                report(EMBEDDING, CHUNKED)
                await self._embed_and_index(doc, chunks, pages, report)
            report(READY, 1.0)
            metrics.INGESTIONS.labels(READY).inc()
            self.on_event(
                doc["owner_id"],
                "document.ready",
                {"document_id": doc["id"], "filename": doc["filename"], "chunks": len(chunks)},
            )
            log.info(
                "document ingested",
                extra={
                    "document_id": document_id,
                    "chunks": len(chunks),
                    "seconds": round(time.perf_counter() - started, 3),
                },
            )
            return READY
        except _Gone:
            log.info(
                "document deleted or taken over during ingestion",
                extra={"document_id": document_id},
            )
            return ""
        except _Failure as failure:
            return await self._fail(doc, failure.code, failure.message, report)
        except ParseError as exc:
            return await self._fail(doc, exc.code, exc.message, report)
        except EmbeddingError:
            log.exception("embedding failed", extra={"document_id": document_id})
            return await self._fail(
                doc,
                "embedding_failed",
                "The embedding model failed while indexing this document. Upload the file again "
                "later to retry; if it keeps failing, ask the administrator to check the "
                "embedding settings.",
                report,
            )
        except Exception:
            log.exception("ingestion failed", extra={"document_id": document_id})
            return await self._fail(
                doc,
                "internal_error",
                "Processing failed unexpectedly. Upload the file again to retry; if it keeps "
                "failing, contact the administrator.",
                report,
            )

    async def _claim(self, document_id: str) -> dict[str, Any] | None:
        """Move a queued document to ``parsing``; None if it is not queued (taken or gone)."""
        async with self.engine.begin() as conn:
            claimed = await conn.execute(
                update(_documents)
                .where(_documents.c.id == document_id, _documents.c.status == QUEUED)
                .values(
                    status=PARSING,
                    progress=0.0,
                    attempts=_documents.c.attempts + 1,
                    error_code=None,
                    error_message=None,
                    updated_at=utcnow(),
                )
                .returning(
                    _documents.c.id,
                    _documents.c.owner_id,
                    _documents.c.filename,
                    _documents.c.storage_key,
                    _documents.c.size_bytes,
                    _documents.c.attempts,
                )
            )
            row = claimed.first()
        return None if row is None else dict(row._mapping)

    async def _parse(self, doc: dict[str, Any]) -> ParsedDocument:
        try:
            data = await self.blobs.get(doc["storage_key"])
        except BlobNotFound as exc:
            if not await self._exists(doc["id"]):
                raise _Gone from exc
            raise _Failure(
                "file_missing",
                "The uploaded file is no longer in storage. Upload the file again.",
            ) from exc

        async def gone() -> bool:
            return doc["id"] in self._cancelled or not await self._still_ours(doc)

        # Off the event loop, bounded in time and memory, and stopped if the document goes;
        # at most one parse per core, however many documents are being ingested.
        try:
            async with self._parse_slots:
                return await parse_bounded(data, doc["filename"], self.budget(), gone)
        except ParseCancelled as exc:
            raise _Gone from exc

    async def _still_ours(self, doc: dict[str, Any]) -> bool:
        """Whether the document still exists and no newer run has claimed it."""
        async with self.engine.connect() as conn:
            found = await conn.execute(
                select(_documents.c.id).where(
                    _documents.c.id == doc["id"], _documents.c.attempts == doc["attempts"]
                )
            )
            return found.first() is not None

    async def _chunk(self, parsed: ParsedDocument) -> list[Chunk]:
        count = await self.embedder.token_counter()
        chunks = await asyncio.to_thread(
            chunk_document,
            parsed,
            chunk_tokens=self.settings.chunk_tokens,
            overlap_tokens=self.settings.chunk_overlap,
            count_tokens=count,
            token_offsets=await self.embedder.token_offsets(),
        )
        if not chunks:
            raise _Failure(
                "empty_document",
                "The document contains no text. Check that you uploaded the right file.",
            )
        return chunks

    async def _check_dimension(self) -> None:
        if self._index_dimension is None:
            async with self.engine.connect() as conn:
                self._index_dimension = await index_dimension(conn) or self.embedder.dimension
        if self._index_dimension != self.embedder.dimension:
            log.error(
                "embedding dimension mismatch: index %s, embedder %s (%s)",
                self._index_dimension,
                self.embedder.dimension,
                self.embedder.name,
            )
            raise _Failure(
                "index_dimension_mismatch",
                f"The search index holds {self._index_dimension}-dimensional vectors but the "
                f"configured embedding model produces {self.embedder.dimension}. Ask the "
                "administrator to rebuild the index for the new model.",
            )

    async def _embed_and_index(
        self,
        doc: dict[str, Any],
        chunks: list[Chunk],
        pages: int,
        report: ProgressCallback,
    ) -> None:
        """Embed and store the chunks; the last transaction also makes the document ``ready``.

        A document of one batch (most are) is written in a single transaction after its
        vectors are ready; a longer one shows ``embedding`` and its progress batch by batch.
        """
        batch_size = self.settings.embedding_batch_size
        total = len(chunks)
        if total > batch_size:
            await self._set(
                doc,
                status=EMBEDDING,
                progress=CHUNKED,
                pages=pages,
                drop_chunks=True,
                chunk_count=0,
            )
        # The next batch embeds while this one is written: the model is never idle for us.
        pending = asyncio.ensure_future(self._vectors(doc, chunks[:batch_size]))
        try:
            for offset in range(0, total, batch_size):
                vectors = await pending
                done = min(offset + batch_size, total)
                if done < total:
                    pending = asyncio.ensure_future(
                        self._vectors(doc, chunks[done : done + batch_size])
                    )
                records = [
                    chunk_record(
                        c,
                        chunk_id=new_id(),
                        document_id=doc["id"],
                        owner_id=doc["owner_id"],
                        embedding=vector,
                    )
                    for c, vector in zip(chunks[offset:done], vectors, strict=True)
                ]
                progress = CHUNKED + (EMBEDDED - CHUNKED) * done / total
                finish = None
                if done == total:
                    finish = {
                        "status": READY,
                        "progress": 1.0,
                        "pages": pages,
                        "chunk_count": total,
                        "embedding_model": self.embedder.name,
                        "attempts": 0,
                    }
                await self._store(
                    doc, records, single=total <= batch_size, progress=progress, finish=finish
                )
                if done < total:
                    report(EMBEDDING, progress)
        finally:
            pending.cancel()  # a prefetch no longer wanted (nothing if it was consumed)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending

    async def _vectors(self, doc: dict[str, Any], batch: list[Chunk]) -> Vectors:
        if doc["id"] in self._cancelled:
            raise _Gone
        return await self.batcher.embed([embedding_text(c) for c in batch])

    async def _store(
        self,
        doc: dict[str, Any],
        records: list[ChunkRecord],
        *,
        single: bool,
        progress: float,
        finish: dict[str, Any] | None,
    ) -> None:
        """Write one batch of chunks with the document's progress, or its ``ready`` state.

        The fenced status update runs first: a document deleted or taken over refuses the
        write before anything is written (so the write can share a transaction with other
        documents', see `GroupWriter`), and its row stays locked until the chunks are in.
        """
        fenced = (_documents.c.id == doc["id"], _documents.c.attempts == doc["attempts"])
        if finish is not None:
            statement = update(_documents).where(*fenced).values(**finish)
        else:
            statement = (
                update(_documents)
                .where(*fenced, _documents.c.status == EMBEDDING)
                .values(progress=round(progress, 4))
            )

        bound: list[ChunkIndex] = []

        async def write(conn: AsyncConnection) -> None:
            changed = await conn.execute(statement.values(updated_at=utcnow()))
            if changed.rowcount != 1:
                raise _Gone
            index = self.index(conn)
            bound.append(index)
            if single:  # nothing was written before: clear what a crashed run left
                await index.delete_document(doc["id"])
            await index.add(records, embedding_model=self.embedder.name)

        try:
            await self.writer.write(write)
            for index in bound:  # outside stores drop what the committed delete removed
                await index.committed()
        except IntegrityError as exc:
            # The chunks' foreign key (trigger on SQLite) refuses chunks of a deleted document.
            if not await self._exists(doc["id"]):
                raise _Gone from exc
            raise

    async def _set(self, doc: dict[str, Any], *, drop_chunks: bool = False, **values: Any) -> None:
        """Update this run's document; `_Gone` if it was deleted or another run took it over.

        ``attempts`` is the run's fencing token: a newer claim (a resume elsewhere) bumps it,
        so a stale run can no longer write.
        """
        index = None
        async with self.engine.begin() as conn:
            changed = await conn.execute(
                update(_documents)
                .where(_documents.c.id == doc["id"], _documents.c.attempts == doc["attempts"])
                .values(updated_at=utcnow(), **values)
            )
            if changed.rowcount != 1:
                raise _Gone
            if drop_chunks:
                index = self.index(conn)
                await index.delete_document(doc["id"])
        if index is not None:
            await index.committed()

    async def _fail(
        self, doc: dict[str, Any], code: str, message: str, report: ProgressCallback
    ) -> str:
        try:
            await self._set(
                doc,
                drop_chunks=True,
                status=FAILED,
                error_code=code,
                error_message=message[:500],
                chunk_count=0,
            )
        except _Gone:
            return ""
        report(FAILED, 1.0)
        metrics.INGESTIONS.labels(FAILED).inc()
        self.on_event(
            doc["owner_id"],
            "document.failed",
            {"document_id": doc["id"], "filename": doc["filename"], "error_code": code},
        )
        log.info("document failed", extra={"document_id": doc["id"], "error_code": code})
        return FAILED

    async def _exists(self, document_id: str) -> bool:
        async with self.engine.connect() as conn:
            found = await conn.execute(
                select(_documents.c.id).where(_documents.c.id == document_id)
            )
            return found.first() is not None

    # -- recovery ---------------------------------------------------------------------------
    async def resume_interrupted(self) -> list[str]:
        """Re-queue documents a crash left in progress (their partial chunks are deleted first).

        Returns the ids queued. (Documents embedded with another model are re-embedded in
        place by `botgpt.documents.reembed`, staying searchable meanwhile.)
        """
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(_documents.c.id, _documents.c.status)
                    .where(_documents.c.status.in_(IN_PROGRESS))
                    .order_by(_documents.c.created_at)
                )
            ).all()
        queued = []
        for document_id, status in rows:
            if self.busy(document_id):
                continue
            if await self._requeue(document_id, status):
                await self.enqueue(document_id)
                queued.append(document_id)
        if queued:
            log.info("resumed %d document ingestions", len(queued))
        return queued

    async def _requeue(self, document_id: str, status: str | None = None) -> bool:
        """Put a document left in progress back to ``queued``, its partial chunks deleted.

        Only if it is still in progress (in `status`, when given): True if it was moved.
        """
        expected = [status] if status is not None else list(IN_PROGRESS)
        async with self.engine.begin() as conn:
            changed = await conn.execute(
                update(_documents)
                .where(_documents.c.id == document_id, _documents.c.status.in_(expected))
                .values(status=QUEUED, progress=0.0, chunk_count=0, updated_at=utcnow())
            )
            if changed.rowcount != 1:
                return False
            index = self.index(conn)
            await index.delete_document(document_id)
        await index.committed()
        return True

    async def purge(self, conn: AsyncConnection, document_id: str) -> ChunkIndex:
        """Delete a document's chunks and row inside the caller's transaction.

        Returns the index: the caller awaits its ``committed()`` once it has committed.
        """
        index = self.index(conn)
        await index.delete_document(document_id)
        await conn.execute(delete(_documents).where(_documents.c.id == document_id))
        return index
