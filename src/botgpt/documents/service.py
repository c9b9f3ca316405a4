"""Documents: receive uploads safely, de-duplicate, store, queue ingestion; list, get, delete.

Uploads are streamed to a temporary file while their bytes are counted and hashed, so the
size limit holds before anything is stored and no body is ever held in memory whole. The
type is sniffed from the content, never trusted from the client.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hashlib
import logging
import os
import re
import tempfile
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from botgpt.config import Settings
from botgpt.documents.ingest import Ingestor, LazyEmbedder, ProgressCallback, build_embedder
from botgpt.documents.models import FAILED, QUEUED, Document
from botgpt.documents.parsing import DOCX, HTML, MARKDOWN, PDF, TEXT, detect_type
from botgpt.documents.reembed import Reembedder
from botgpt.documents.storage import BlobStore, LocalBlobStore
from botgpt.exceptions import InvalidInput, NotFound, PayloadTooLarge, UnsupportedMediaType
from botgpt.ids import new_id, utcnow
from botgpt.jobs.queue import InProcessJobQueue, JobQueue
from botgpt.pagination import Page

log = logging.getLogger("botgpt.documents")

FILE_FIELD = "file"
MAX_FIELD_CHARS = 1000
MAX_FIELDS = 20
MULTIPART_OVERHEAD = 64 * 1024  # headers, boundaries and small fields around the file
_WRITE_BUFFER = 1 << 20
_EXTENSIONS = {PDF: ".pdf", DOCX: ".docx", HTML: ".html", MARKDOWN: ".md", TEXT: ".txt"}
# Failures that may pass: uploading the same bytes again re-runs the ingestion.
RETRYABLE_ERRORS = frozenset(
    ("embedding_failed", "internal_error", "ingestion_interrupted", "file_missing")
)
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]+')
_SPACES = re.compile(r"\s+")


def sanitise_filename(raw: str, detected_type: str) -> str:
    """A display- and disk-safe file name: no path, no control or reserved characters."""
    name = PureWindowsPath(PurePosixPath(raw or "").name).name  # drop both kinds of path
    name = unicodedata.normalize("NFC", name)
    name = _SPACES.sub(" ", _UNSAFE.sub("_", name)).strip(" .")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    ext = ext[:16]
    stem = stem[: 200 - len(ext) - 1] if ext else stem[:200]
    name = f"{stem}.{ext}" if ext and stem else stem or ""
    if not name or name.startswith("."):
        name = "document" + _EXTENSIONS.get(detected_type, "")
    return name


@dataclass(slots=True)
class IncomingUpload:
    """An upload spooled to a local temporary file, with its size and SHA-256."""

    path: Path
    filename: str
    content_type: str | None
    size: int
    sha256: str
    fields: dict[str, str] = field(default_factory=dict)

    async def discard(self) -> None:
        """Remove the temporary file (it is gone already once stored)."""
        await asyncio.to_thread(self.path.unlink, missing_ok=True)


@dataclass(frozen=True, slots=True)
class UploadResult:
    """The stored (or already existing) document."""

    document: Document
    duplicate: bool


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The file is larger than the upload limit of {limit / (1024 * 1024):g} MB.",
        details={"max_bytes": limit},
    )


class _Spool:
    """Receives one multipart/form-data body: the `file` part to disk, small fields in memory."""

    def __init__(self, directory: Path, limit: int, charset: str) -> None:
        self.directory = directory
        self.limit = limit
        self.charset = charset
        self.fields: dict[str, str] = {}
        self.headers: list[tuple[bytes, bytes]] = []
        self._header_name = b""
        self._header_value = b""
        self.part_name = ""
        self.part_is_file = False
        self.part_data = bytearray()
        self.file_found = False
        self.filename = ""
        self.content_type: str | None = None
        self.size = 0
        self.digest = hashlib.sha256()
        self.pending = bytearray()  # file bytes not written yet
        self.handle: Any = None
        self.path: Path | None = None

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def _decode(self, raw: bytes) -> str:
        try:
            return raw.decode(self.charset)
        except (UnicodeDecodeError, LookupError):
            return raw.decode("latin-1")

    def on_part_begin(self) -> None:
        self.headers = []
        self.part_name = ""
        self.part_is_file = False
        self.part_data = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers.append((self._header_name.lower(), self._header_value))
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        disposition = next((v for k, v in self.headers if k == b"content-disposition"), b"")
        _, options = parse_options_header(disposition)
        self.part_name = self._decode(options.get(b"name", b""))
        if self.part_name == FILE_FIELD and not self.file_found:
            self.file_found = self.part_is_file = True
            self.filename = self._decode(options.get(b"filename", b""))
            declared = next((v for k, v in self.headers if k == b"content-type"), None)
            self.content_type = self._decode(declared)[:200] if declared else None
        elif self.part_name == FILE_FIELD:
            raise InvalidInput("Upload one file per request, in the `file` field.")
        elif len(self.fields) >= MAX_FIELDS:
            raise InvalidInput("Too many form fields.")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part_is_file:
            piece = data[start:end]
            self.size += len(piece)
            if self.size > self.limit:
                raise _too_large(self.limit)
            self.digest.update(piece)
            self.pending += piece
        else:
            self.part_data += data[start:end]
            if len(self.part_data) > MAX_FIELD_CHARS * 4:
                raise InvalidInput(f"The form field `{self.part_name}` is too long.")

    def on_part_end(self) -> None:
        if not self.part_is_file and self.part_name:
            value = self._decode(bytes(self.part_data))
            if len(value) > MAX_FIELD_CHARS:
                raise InvalidInput(f"The form field `{self.part_name}` is too long.")
            self.fields[self.part_name] = value

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", dir=self.directory)
        self.handle = os.fdopen(fd, "wb")
        self.path = Path(name)

    def write_pending(self) -> None:
        """Blocking: append the buffered bytes to the temporary file (run in a thread)."""
        data, self.pending = bytes(self.pending), bytearray()
        self.handle.write(data)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()

    def remove(self) -> None:
        self.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


async def spool_multipart(
    stream: AsyncIterator[bytes],
    content_type: str,
    content_length: int | None,
    *,
    directory: Path,
    max_bytes: int,
) -> IncomingUpload:
    """Stream a multipart/form-data body to a temporary file, enforcing the size limit."""
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data" or b"boundary" not in options:
        raise UnsupportedMediaType(
            "Send the file as multipart/form-data, in a field named `file`.",
            details={"content_type": content_type[:200]},
        )
    body_limit = max_bytes + MULTIPART_OVERHEAD
    if content_length is not None and content_length > body_limit:
        raise _too_large(max_bytes)
    charset = options.get(b"charset", b"utf-8").decode("latin-1")
    try:
        charset = codecs.lookup(charset).name
    except LookupError:
        charset = "utf-8"
    spool = _Spool(directory, max_bytes, charset)
    parser = MultipartParser(options[b"boundary"], spool.callbacks())  # type: ignore[arg-type]
    received = 0
    try:
        await asyncio.to_thread(spool.open)
        async for piece in stream:
            received += len(piece)
            if received > body_limit:
                raise _too_large(max_bytes)
            parser.write(piece)
            if len(spool.pending) >= _WRITE_BUFFER:
                await asyncio.to_thread(spool.write_pending)
        parser.finalize()
        if spool.pending:
            await asyncio.to_thread(spool.write_pending)
        await asyncio.to_thread(spool.close)
    except MultipartParseError as exc:
        await asyncio.to_thread(spool.remove)
        raise InvalidInput("The multipart body is malformed.") from exc
    except BaseException:
        await asyncio.to_thread(spool.remove)
        raise
    assert spool.path is not None
    incoming = IncomingUpload(
        spool.path,
        spool.filename,
        spool.content_type,
        spool.size,
        spool.digest.hexdigest(),
        spool.fields,
    )
    if not spool.file_found:
        await incoming.discard()
        raise InvalidInput(
            "Attach the document in a multipart field named `file`.", details={"field": "file"}
        )
    if spool.size == 0:
        await incoming.discard()
        raise InvalidInput("The uploaded file is empty.", details={"field": "file"})
    return incoming


def _copy_hashing(source: Path, directory: Path, limit: int) -> tuple[Path, int, str]:
    """Blocking: copy a local file into the spool folder, hashing it and enforcing the limit."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="upload-", dir=directory)
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            while piece := src.read(_WRITE_BUFFER):
                size += len(piece)
                if size > limit:
                    raise _too_large(limit)
                digest.update(piece)
                out.write(piece)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name), size, digest.hexdigest()


def _sniff(path: Path, filename: str) -> str | None:
    """Blocking: the content type of a spooled file (a ZIP is read whole to tell DOCX apart)."""
    with path.open("rb") as handle:
        head = handle.read(8192)
        if head.startswith(b"PK\x03\x04"):
            head += handle.read()
    return detect_type(head, filename)


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
            _copy_hashing, path, self.spool_dir, self.max_bytes
        )
        if size == 0:
            await asyncio.to_thread(spooled.unlink, missing_ok=True)
            raise InvalidInput("The file is empty.", details={"path": str(path)})
        return IncomingUpload(spooled, path.name, None, size, digest)

    async def upload(
        self, db: AsyncSession, owner_id: str, incoming: IncomingUpload, *, enqueue: bool = True
    ) -> UploadResult:
        """Store a spooled upload and queue its ingestion; the same bytes return the same doc."""
        kind = await asyncio.to_thread(_sniff, incoming.path, incoming.filename)
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

    # -- delete -----------------------------------------------------------------------------
    async def delete(self, db: AsyncSession, owner_id: str, document_id: str) -> None:
        """Delete the file, the chunks (vectors and keyword entries) and the row."""
        doc = await self.get(db, owner_id, document_id)
        # File first: if the database step fails, the row stays and a retry finishes the job.
        await self.blobs.delete(doc.storage_key)
        await self.ingestor.purge(await db.connection(), document_id)
        await db.commit()
        db.expunge(doc)
        log.info("document deleted", extra={"document_id": document_id})


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


async def resolve_user(sessions: async_sessionmaker[AsyncSession], reference: str) -> str:
    """The id of the user with this id, email or external id."""
    from botgpt.auth.models import User

    async with sessions() as db:
        found = await db.execute(
            select(User.id).where(
                (User.id == reference)
                | (User.email == reference.lower())
                | (User.external_id == reference)
            )
        )
        user_id = found.scalar()
    if user_id is None:
        raise NotFound(f"No user with id or email {reference!r}.")
    return str(user_id)


def build_document_services(
    settings: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    queue: JobQueue | None = None,
) -> dict[str, Any]:
    """The documents stack for the container: embedder, blobs, jobs, ingestor, service, scope."""
    from botgpt.documents.scope import DocumentScope

    embedder: LazyEmbedder = build_embedder(settings)
    blobs = LocalBlobStore(settings.data_dir / "uploads")
    jobs = queue or InProcessJobQueue(settings.ingest_workers)
    ingestor = Ingestor(settings, engine, blobs, embedder, jobs)
    return {
        "embedder": embedder,
        "blobs": blobs,
        "jobs": jobs,
        "ingestor": ingestor,
        "reembedder": Reembedder(engine, ingestor, jobs),
        "documents": DocumentService(settings, engine, sessions, blobs, ingestor),
        "document_scope": DocumentScope(settings, engine, embedder),
    }


async def close_document_services(services: dict[str, Any]) -> None:
    """Stop the job queue and release the embedder (app shutdown)."""
    with contextlib.suppress(KeyError):
        await services["jobs"].stop()
    with contextlib.suppress(KeyError):
        await services["embedder"].aclose()
