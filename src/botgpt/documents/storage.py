"""Where uploaded files live: a small blob-store interface and its local-folder implementation.

Keys are relative, slash-separated names chosen by the application (``owner/document``); an
S3-compatible store can implement the same interface later.
"""

from __future__ import annotations

import abc
import asyncio
import errno
import io
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from botgpt.files import private_dir

_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")


_READ_CHUNK = 256 * 1024


class BlobNotFound(Exception):
    """No blob is stored under the key."""


@dataclass(frozen=True, slots=True)
class BlobStream:
    """An opened blob: its size in bytes and its content in chunks."""

    size: int
    chunks: AsyncIterator[bytes]


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class BlobStore(abc.ABC):
    """Stores opaque files by key; every method is async and safe to call on the event loop."""

    @abc.abstractmethod
    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (replacing any previous blob) atomically."""

    @abc.abstractmethod
    async def put_file(self, key: str, source: Path) -> None:
        """Store the local file ``source`` under ``key``; the source file is consumed."""

    @abc.abstractmethod
    async def get(self, key: str) -> bytes:
        """The blob's bytes; raises ``BlobNotFound``."""

    async def open(self, key: str) -> BlobStream:
        """The blob's size and bytes; raises ``BlobNotFound`` before the stream starts.

        This default reads the whole blob; stores that can stream should override it.
        """
        data = await self.get(key)
        return BlobStream(len(data), _once(data))

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the blob; a missing blob is not an error."""

    @abc.abstractmethod
    async def exists(self, key: str) -> bool:
        """Whether a blob is stored under ``key``."""


def check_key(key: str) -> str:
    """Validate a key: relative segments of safe characters, no '..', no leading dot."""
    if len(key) > 200 or not _KEY.fullmatch(key):
        raise ValueError(f"invalid blob key {key!r}")
    return key


class LocalBlobStore(BlobStore):
    """Blobs as files under ``root``; writes go to a temporary file then are renamed into place.

    Blocking file I/O runs in worker threads so the event loop keeps serving requests.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, key: str) -> Path:
        """The file that holds ``key``."""
        return self.root / check_key(key)

    async def put(self, key: str, data: bytes) -> None:
        """Write ``data`` to a temporary file next to the target, fsync, and rename it."""
        await asyncio.to_thread(self._put_bytes, self.path_for(key), data)

    async def put_file(self, key: str, source: Path) -> None:
        """Move ``source`` into place (a rename on the same file system, else copy + rename)."""
        await asyncio.to_thread(self._put_file, self.path_for(key), Path(source))

    async def get(self, key: str) -> bytes:
        """Read the whole blob."""
        try:
            return await asyncio.to_thread(self.path_for(key).read_bytes)
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc

    async def open(self, key: str) -> BlobStream:
        """Open the file now (so a missing blob fails early) and read it in chunks off the loop."""
        try:
            handle, size = await asyncio.to_thread(self._open, self.path_for(key))
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc
        return BlobStream(size, self._chunks(handle))

    async def delete(self, key: str) -> None:
        """Unlink the file."""
        await asyncio.to_thread(self._delete, self.path_for(key))

    async def exists(self, key: str) -> bool:
        """Whether the file exists."""
        return await asyncio.to_thread(self.path_for(key).is_file)

    # -- blocking helpers, run in threads ---------------------------------------------------
    @staticmethod
    def _temp_beside(target: Path) -> tuple[int, Path]:
        private_dir(target.parent)
        fd, name = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        return fd, Path(name)

    def _put_bytes(self, target: Path, data: bytes) -> None:
        fd, temp = self._temp_beside(target)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def _put_file(self, target: Path, source: Path) -> None:
        private_dir(target.parent)
        try:
            os.replace(source, target)
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        fd, temp = self._temp_beside(target)  # another file system: copy, then rename
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        source.unlink(missing_ok=True)

    @staticmethod
    def _open(target: Path) -> tuple[io.BufferedReader, int]:
        handle = target.open("rb")
        try:
            # The opened file's size: a blob replaced meanwhile does not change what is read.
            return handle, os.fstat(handle.fileno()).st_size
        except BaseException:
            handle.close()
            raise

    @staticmethod
    async def _chunks(handle: io.BufferedReader) -> AsyncIterator[bytes]:
        try:
            while chunk := await asyncio.to_thread(handle.read, _READ_CHUNK):
                yield chunk
        finally:
            handle.close()

    def _delete(self, target: Path) -> None:
        # Empty owner folders are left in place: pruning them would race with a concurrent put.
        target.unlink(missing_ok=True)
