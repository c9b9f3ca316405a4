"""Receiving uploads: a multipart body or a local file spooled to disk, counted and hashed.

Nothing is held in memory whole: the `file` part streams to a temporary file while its
bytes are counted (the size limit holds before anything is stored) and hashed. The type
is sniffed from the content, never trusted from the client.
"""

from __future__ import annotations

import asyncio
import codecs
import hashlib
import os
import re
import tempfile
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from botgpt.documents.parsing import DOCX, HTML, MARKDOWN, PDF, TEXT, detect_type
from botgpt.exceptions import (
    InvalidInput,
    MalformedRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from botgpt.files import private_dir

FILE_FIELD = "file"
MAX_FIELD_CHARS = 1000
MAX_FIELDS = 20
MULTIPART_OVERHEAD = 64 * 1024  # headers, boundaries and small fields around the file
# The body limit of the upload route (BOTGPT_MAX_UPLOAD_MB's highest value, 2 GiB): the
# configured limit is enforced by `spool_multipart` itself, with its own message.
UPLOAD_BODY_CEILING = 2048 * 1024 * 1024 + MULTIPART_OVERHEAD
_WRITE_BUFFER = 1 << 20
_EXTENSIONS = {PDF: ".pdf", DOCX: ".docx", HTML: ".html", MARKDOWN: ".md", TEXT: ".txt"}
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
        private_dir(self.directory)
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
        if parser.state != MultipartState.END:
            # A body cut short (no closing boundary) would store a truncated file.
            raise MalformedRequest(
                "The multipart body is incomplete: it ends before its closing boundary. "
                "Send the whole file again."
            )
        if spool.pending:
            await asyncio.to_thread(spool.write_pending)
        await asyncio.to_thread(spool.close)
    except MultipartParseError as exc:
        await asyncio.to_thread(spool.remove)
        raise MalformedRequest("The multipart body is malformed.") from exc
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


def copy_hashing(source: Path, directory: Path, limit: int) -> tuple[Path, int, str]:
    """Blocking: copy a local file into the spool folder, hashing it and enforcing the limit."""
    private_dir(directory)
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


def sniff(path: Path, filename: str) -> str | None:
    """Blocking: the content type of a spooled file (a ZIP is read whole to tell DOCX apart)."""
    with path.open("rb") as handle:
        head = handle.read(8192)
        if head.startswith(b"PK\x03\x04"):
            head += handle.read()
    return detect_type(head, filename)
