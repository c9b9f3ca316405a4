"""Blobs in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2...) through the `minio` client.

The client is synchronous (urllib3 with a connection pool); every call runs in a worker thread
so the event loop keeps serving requests, as the local store does with file I/O.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from minio import Minio
from minio.error import S3Error

from botgpt.documents.storage import BlobNotFound, BlobStore, BlobStream, check_key

if TYPE_CHECKING:
    from urllib3 import BaseHTTPResponse

    from botgpt.config import Settings

_READ_CHUNK = 256 * 1024
_MISSING = {"NoSuchKey", "NoSuchObject", "NotFound"}


class S3BlobStore(BlobStore):
    """Blobs as objects ``prefix + key`` of ``bucket``; the bucket is created on first write."""

    def __init__(self, client: Minio, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._bucket_ready = False

    @classmethod
    def from_url(
        cls,
        endpoint_url: str,
        bucket: str,
        *,
        access_key: str | None,
        secret_key: str | None,
        region: str | None = None,
        prefix: str = "",
    ) -> S3BlobStore:
        """A store for ``http(s)://host[:port]``; https unless the URL says http."""
        parts = urlsplit(endpoint_url if "://" in endpoint_url else f"https://{endpoint_url}")
        client = Minio(
            parts.netloc,
            access_key=access_key,
            secret_key=secret_key,
            region=region or None,
            secure=parts.scheme != "http",
        )
        return cls(client, bucket, prefix)

    def name_for(self, key: str) -> str:
        """The object name that holds ``key``."""
        return self.prefix + check_key(key)

    async def put(self, key: str, data: bytes) -> None:
        """Upload ``data`` (S3 replaces an object whole, so readers never see a partial one)."""
        name = self.name_for(key)
        await self._ensure_bucket()
        await asyncio.to_thread(
            self.client.put_object, self.bucket, name, io.BytesIO(data), len(data)
        )

    async def put_file(self, key: str, source: Path) -> None:
        """Upload the local file (multipart when large), then remove it."""
        name = self.name_for(key)
        await self._ensure_bucket()
        await asyncio.to_thread(self.client.fput_object, self.bucket, name, str(source))
        await asyncio.to_thread(Path(source).unlink, True)

    async def get(self, key: str) -> bytes:
        """Download the whole object."""
        response = await self._get(key)
        try:
            return await asyncio.to_thread(response.read)
        finally:
            response.close()
            response.release_conn()

    async def open(self, key: str) -> BlobStream:
        """Start the download now (a missing object fails early) and read it in chunks."""
        response = await self._get(key)
        size = int(response.headers.get("Content-Length", "0"))
        return BlobStream(size, self._chunks(response))

    async def delete(self, key: str) -> None:
        """Remove the object (S3 answers a missing one with success)."""
        await asyncio.to_thread(self.client.remove_object, self.bucket, self.name_for(key))

    async def exists(self, key: str) -> bool:
        """Whether the object exists."""
        try:
            await asyncio.to_thread(self.client.stat_object, self.bucket, self.name_for(key))
        except S3Error as exc:
            if exc.code in _MISSING or exc.code == "NoSuchBucket":
                return False
            raise
        return True

    async def _get(self, key: str) -> BaseHTTPResponse:
        try:
            return await asyncio.to_thread(self.client.get_object, self.bucket, self.name_for(key))
        except S3Error as exc:
            if exc.code in _MISSING or exc.code == "NoSuchBucket":
                raise BlobNotFound(key) from exc
            raise

    @staticmethod
    async def _chunks(response: BaseHTTPResponse) -> AsyncIterator[bytes]:
        try:
            while chunk := await asyncio.to_thread(response.read, _READ_CHUNK):
                yield chunk
        finally:
            response.close()
            response.release_conn()

    async def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        await asyncio.to_thread(self._create_bucket)
        self._bucket_ready = True

    def _create_bucket(self) -> None:
        if self.client.bucket_exists(self.bucket):
            return
        try:
            self.client.make_bucket(self.bucket)
        except S3Error as exc:  # another process created it meanwhile
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise


def s3_store_from_settings(settings: Settings) -> S3BlobStore:
    """The store named by BOTGPT_S3_* settings."""
    return S3BlobStore.from_url(
        settings.s3_endpoint_url,
        settings.s3_bucket,
        access_key=settings.s3_access_key.get_secret_value() if settings.s3_access_key else None,
        secret_key=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
        region=settings.s3_region,
        prefix=settings.s3_prefix,
    )
