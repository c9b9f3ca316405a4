"""Documents: store received uploads, de-duplicate, queue ingestion; list, get, delete.

Receiving (spooling, size limit, hashing, type sniffing) lives in `documents.uploads`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from botgpt.config import Settings
from botgpt.documents.embedding import LazyEmbedder, build_embedder
from botgpt.documents.ingest import Ingestor, ProgressCallback
from botgpt.documents.models import FAILED, QUEUED, Document
from botgpt.documents.parsing import TEXT
from botgpt.documents.reembed import Reembedder
from botgpt.documents.scope import DocumentScope
from botgpt.documents.storage import BlobNotFound, BlobStore, BlobStream, LocalBlobStore
from botgpt.documents.uploads import (
    IncomingUpload,
    copy_hashing,
    sanitise_filename,
    sniff,
    spool_multipart,
)
from botgpt.documents.vector_sync import VectorSync
from botgpt.exceptions import InvalidInput, NotFound, UnsupportedMediaType
from botgpt.ids import new_id, utcnow
from botgpt.jobs.queue import JobQueue, make_queue
from botgpt.pagination import Page
from botgpt.retrieval.indexes import ChunkIndexes

log = logging.getLogger("botgpt.documents")

# Failures that may pass: uploading the same bytes again re-runs the ingestion.
RETRYABLE_ERRORS = frozenset(
    ("embedding_failed", "internal_error", "ingestion_interrupted", "file_missing")
)


@dataclass(frozen=True, slots=True)
class UploadResult:
    """The stored (or already existing) document."""

    document: Document
    duplicate: bool


class DocumentService:
    """Upload, list, get and delete documents; ingestion runs on the job queue."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        blobs: BlobStore,
        ingestor: Ingestor,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions = sessions
        self.blobs = blobs
        self.ingestor = ingestor
        self.spool_dir = settings.data_dir / "tmp" / "uploads"

    @property
    def max_bytes(self) -> int:
        """The upload limit in bytes."""
        return int(self.settings.max_upload_mb * 1024 * 1024)

    # -- upload -----------------------------------------------------------------------------
    async def receive(
        self, stream: AsyncIterator[bytes], content_type: str, content_length: int | None
    ) -> IncomingUpload:
        """Spool a multipart upload body (413 above the limit); the caller must `discard` it."""
        return await spool_multipart(
            stream,
            content_type,
            content_length,
            directory=self.spool_dir,
            max_bytes=self.max_bytes,
        )

    async def receive_path(self, path: Path) -> IncomingUpload:
        """Spool a local file (the CLI's upload); the caller must `discard` it."""
        spooled, size, digest = await asyncio.to_thread(
            copy_hashing, path, self.spool_dir, self.max_bytes
        )
        if size == 0:
            await asyncio.to_thread(spooled.unlink, missing_ok=True)
            raise InvalidInput("The file is empty.", details={"path": str(path)})
        return IncomingUpload(spooled, path.name, None, size, digest)

    async def upload(
        self, db: AsyncSession, owner_id: str, incoming: IncomingUpload, *, enqueue: bool = True
    ) -> UploadResult:
        """Store a spooled upload and queue its ingestion; the same bytes return the same doc."""
        kind = await asyncio.to_thread(sniff, incoming.path, incoming.filename)
        if kind is None:
            raise UnsupportedMediaType(
                "This file type is not supported. Upload a PDF, Word (.docx), HTML, Markdown or "
                "plain-text file.",
                details={"filename": sanitise_filename(incoming.filename, TEXT)},
            )
        existing = await self._by_hash(db, owner_id, incoming.sha256)
        if existing is not None:
            if existing.status == FAILED and existing.error_code in RETRYABLE_ERRORS:
                existing = await self._retry(db, existing, incoming, enqueue)
            return UploadResult(existing, True)
        document_id = new_id()
        key = f"{owner_id}/{document_id}"
        await self.blobs.put_file(key, incoming.path)
        doc = Document(
            id=document_id,
            owner_id=owner_id,
            filename=sanitise_filename(incoming.filename, kind),
            content_type=incoming.content_type,
            detected_type=kind,
            size_bytes=incoming.size,
            sha256=incoming.sha256,
            storage_key=key,
            status=QUEUED,
            progress=0.0,
            chunk_count=0,
            attempts=0,
        )
        try:
            db.add(doc)
            await db.commit()
        except IntegrityError:
            # The same bytes were uploaded concurrently: keep the first, drop this copy.
            await db.rollback()
            await self.blobs.delete(key)
            existing = await self._by_hash(db, owner_id, incoming.sha256)
            if existing is None:
                raise
            return UploadResult(existing, True)
        except BaseException:
            await self.blobs.delete(key)
            raise
        if enqueue:
            await self.ingestor.enqueue(document_id)
        log.info(
            "document uploaded",
            extra={"document_id": document_id, "size": incoming.size, "type": kind},
        )
        return UploadResult(doc, False)

    async def ingest_file(
        self, owner_id: str, path: Path, on_progress: ProgressCallback | None = None
    ) -> UploadResult:
        """Upload a local file and ingest it now, in this task (the CLI's path)."""
        incoming = await self.receive_path(path)
        try:
            async with self.sessions() as db:
                result = await self.upload(db, owner_id, incoming, enqueue=False)
        finally:
            await incoming.discard()
        if result.document.status == QUEUED:  # new, or a failed duplicate being retried
            await self.ingestor.run(result.document.id, on_progress)
        async with self.sessions() as db:
            return UploadResult(await self.get(db, owner_id, result.document.id), result.duplicate)

    async def _retry(
        self, db: AsyncSession, doc: Document, incoming: IncomingUpload, enqueue: bool
    ) -> Document:
        """Re-run a document that failed for a passing reason, with the bytes just uploaded."""
        await self.blobs.put_file(doc.storage_key, incoming.path)
        changed = await db.execute(
            update(Document)
            .where(Document.id == doc.id, Document.status == FAILED)
            .values(
                status=QUEUED,
                progress=0.0,
                attempts=0,
                error_code=None,
                error_message=None,
                updated_at=utcnow(),
            )
        )
        await db.commit()
        fresh = await db.get(Document, doc.id, populate_existing=True)
        if changed.rowcount == 1 and enqueue:  # type: ignore[attr-defined]
            await self.ingestor.enqueue(doc.id)
        return fresh or doc

    async def _by_hash(self, db: AsyncSession, owner_id: str, sha256: str) -> Document | None:
        found = await db.execute(
            select(Document).where(Document.owner_id == owner_id, Document.sha256 == sha256)
        )
        return found.scalar()

    # -- read -------------------------------------------------------------------------------
    async def list(self, db: AsyncSession, owner_id: str, page: Page) -> tuple[list[Document], int]:
        """The owner's documents, newest first, with the total count."""
        where = Document.owner_id == owner_id
        total = int((await db.execute(select(func.count()).where(where))).scalar_one())
        rows = await db.execute(
            select(Document)
            .where(where)
            .order_by(Document.created_at.desc(), Document.id.desc())
            .offset(page.offset)
            .limit(page.limit)
        )
        return list(rows.scalars()), total

    async def get(self, db: AsyncSession, owner_id: str, document_id: str) -> Document:
        """One of the owner's documents; anyone else's is reported as missing."""
        doc = await db.get(Document, document_id)
        if doc is None or doc.owner_id != owner_id:
            raise NotFound("Document not found.")
        return doc

    async def open_file(
        self, db: AsyncSession, owner_id: str, document_id: str
    ) -> tuple[Document, BlobStream]:
        """One of the owner's documents with its original file opened for download."""
        doc = await self.get(db, owner_id, document_id)
        try:
            blob = await self.blobs.open(doc.storage_key)
        except BlobNotFound as exc:
            raise NotFound("The file of this document is no longer stored.") from exc
        return doc, blob

    # -- delete -----------------------------------------------------------------------------
    async def delete(self, db: AsyncSession, owner_id: str, document_id: str) -> None:
        """Delete the file, the chunks (vectors and keyword entries) and the row."""
        doc = await self.get(db, owner_id, document_id)
        # File first: if the database step fails, the row stays and a retry finishes the job.
        await self.blobs.delete(doc.storage_key)
        index = await self.ingestor.purge(await db.connection(), document_id)
        await db.commit()
        await index.committed()  # vectors outside the database go once the rows are gone
        self.ingestor.cancel(document_id)  # a parse under way here stops now, not at its end
        db.expunge(doc)
        log.info("document deleted", extra={"document_id": document_id})

    async def forget_owner(self, owner_id: str) -> None:
        """After an account's rows are deleted: drop its vectors kept outside the database."""
        await self.ingestor.indexes.forget_owner(owner_id)


SUPPORTED_SUFFIXES = frozenset(
    (".pdf", ".docx", ".html", ".htm", ".xhtml", ".md", ".markdown", ".txt", ".text")
)


def expand_paths(paths: list[str]) -> list[Path]:
    """Files to ingest: named files as given, folders walked for supported file names."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
            )
        else:
            found.append(path)
    return list(dict.fromkeys(found))


@dataclass(frozen=True, slots=True)
class DocumentServices:
    """The documents stack: embedder, file store, job queue, ingestion, service and scope."""

    embedder: LazyEmbedder
    blobs: BlobStore
    jobs: JobQueue
    ingestor: Ingestor
    reembedder: Reembedder
    documents: DocumentService
    scope: DocumentScope
    indexes: ChunkIndexes
    vector_sync: VectorSync

    async def close(self) -> None:
        """Stop the job queue, release the embedder and the vector store (app shutdown)."""
        await self.jobs.stop()
        await self.embedder.aclose()
        await self.indexes.close()


def build_document_services(
    settings: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    queue: JobQueue | None = None,
) -> DocumentServices:
    """The documents stack for the container."""
    embedder: LazyEmbedder = build_embedder(settings)
    blobs: BlobStore
    if settings.blob_store == "s3":
        from botgpt.documents.s3storage import s3_store_from_settings

        blobs = s3_store_from_settings(settings)
    else:
        blobs = LocalBlobStore(settings.data_dir / "uploads")
    jobs = queue or make_queue(settings)
    indexes = build_chunk_indexes(settings)
    ingestor = Ingestor(settings, engine, blobs, embedder, jobs, indexes)
    return DocumentServices(
        embedder=embedder,
        blobs=blobs,
        jobs=jobs,
        ingestor=ingestor,
        reembedder=Reembedder(engine, ingestor, jobs),
        documents=DocumentService(settings, engine, sessions, blobs, ingestor),
        scope=DocumentScope(settings, engine, embedder, indexes),
        indexes=indexes,
        vector_sync=VectorSync(engine, ingestor, jobs),
    )


def build_chunk_indexes(settings: Settings) -> ChunkIndexes:
    """The chunk index of the settings: the database's own, or Qdrant for the vectors."""
    if settings.vector_store != "qdrant":
        return ChunkIndexes()
    from botgpt.retrieval.qdrant_store import connect_qdrant

    key = settings.qdrant_api_key
    return ChunkIndexes(
        connect_qdrant(
            settings.qdrant_url,
            api_key=key.get_secret_value() if key else None,
            path=str(settings.qdrant_path) if settings.qdrant_path else None,
            collection=settings.qdrant_collection,
            timeout_seconds=settings.qdrant_timeout_seconds,
        )
    )
