"""The S3 blob store, over HTTP against moto's standalone S3 server (the edge we don't own)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from botgpt.config import Settings
from botgpt.documents.s3storage import S3BlobStore
from botgpt.documents.service import build_document_services
from botgpt.documents.storage import BlobNotFound
from tests.conftest import AuthedUser
from tests.documents import samples
from tests.documents.conftest import Docs


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    """A moto S3 server on a free loopback port, for this module."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            assert proc.poll() is None, "moto_server exited"
            assert time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def make_store(url: str, prefix: str = "") -> S3BlobStore:
    return S3BlobStore.from_url(
        url,
        f"botgpt-{uuid.uuid4().hex[:12]}",
        access_key="test",
        secret_key="test",
        region="us-east-1",
        prefix=prefix,
    )


@pytest.fixture
def store(s3_url: str) -> S3BlobStore:
    return make_store(s3_url, prefix="uploads")


async def test_put_get_exists_delete(store: S3BlobStore) -> None:
    assert not await store.exists("u1/doc")
    await store.put("u1/doc", b"hello blob")
    assert await store.exists("u1/doc")
    assert await store.get("u1/doc") == b"hello blob"
    await store.put("u1/doc", b"replaced")
    assert await store.get("u1/doc") == b"replaced"
    await store.delete("u1/doc")
    assert not await store.exists("u1/doc")
    await store.delete("u1/doc")  # deleting a missing blob is not an error
    names = [o.object_name for o in store.client.list_objects(store.bucket, recursive=True)]
    assert names == []


async def test_objects_are_named_under_the_prefix(store: S3BlobStore) -> None:
    await store.put("owner/document", b"x")
    names = [o.object_name for o in store.client.list_objects(store.bucket, recursive=True)]
    assert names == ["uploads/owner/document"]


async def test_missing_blob_raises_blob_not_found(store: S3BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        await store.get("nobody/nothing")
    await store.put("someone/something", b"x")  # the bucket exists now; the key still not
    with pytest.raises(BlobNotFound):
        await store.open("nobody/nothing")


async def test_open_streams_in_chunks_with_the_size(store: S3BlobStore) -> None:
    data = os.urandom(700 * 1024)
    await store.put("u/big", data)
    blob = await store.open("u/big")
    assert blob.size == len(data)
    chunks = [c async for c in blob.chunks]
    assert len(chunks) >= 3
    assert b"".join(chunks) == data


async def test_put_file_uploads_and_consumes_the_source(store: S3BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "incoming"
    source.write_bytes(b"from disk")
    await store.put_file("u/file", source)
    assert not source.exists()
    assert await store.get("u/file") == b"from disk"


async def test_unsafe_keys_are_refused(store: S3BlobStore) -> None:
    for key in ("../escape", "/abs", "a/../b", ".hidden"):
        with pytest.raises(ValueError):
            await store.put(key, b"x")


def test_settings_choose_the_s3_store(s3_url: str, tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path,
        blob_store="s3",
        s3_endpoint_url=s3_url,
        s3_bucket="botgpt-uploads",
        s3_access_key="test",
        s3_secret_key="test",
        s3_prefix="prod/",
    )
    blobs = build_document_services(settings, None, None).blobs  # type: ignore[arg-type]
    assert isinstance(blobs, S3BlobStore)
    assert (blobs.bucket, blobs.prefix) == ("botgpt-uploads", "prod/")
    with pytest.raises(ValueError, match="BOTGPT_S3_BUCKET"):
        Settings(_env_file=None, blob_store="s3")  # type: ignore[call-arg]


@pytest.fixture
async def s3_docs(docs: Docs, s3_url: str) -> AsyncIterator[tuple[Docs, S3BlobStore]]:
    """The app under test with its uploads in a moto bucket."""
    s3 = make_store(s3_url)
    saved = docs.service.blobs, docs.ingestor.blobs
    docs.service.blobs = docs.ingestor.blobs = s3
    try:
        yield docs, s3
    finally:
        docs.service.blobs, docs.ingestor.blobs = saved


async def test_upload_ingest_download_and_delete_through_s3(
    s3_docs: tuple[Docs, S3BlobStore], client: httpx.AsyncClient, user: AuthedUser
) -> None:
    docs, s3 = s3_docs
    data = samples.make_pdf(["Sea otters hold hands while they sleep in kelp forests."])
    r = await docs.upload(user, "otters.pdf", data, "application/pdf")
    assert r.status_code == 201, r.text
    doc_id = r.json()["id"]
    body = await docs.wait(user, doc_id)
    assert body["status"] == "ready", body  # the ingestion read the original from S3
    names = [o.object_name for o in s3.client.list_objects(s3.bucket, recursive=True)]
    assert names == [f"{user.id}/{doc_id}"]
    assert not (docs.uploads / user.id).exists()  # nothing of this user's in the local folder
    r = await client.get(f"/api/v1/documents/{doc_id}/file", headers=user.headers)
    assert r.status_code == 200 and r.content == data
    r = await client.delete(f"/api/v1/documents/{doc_id}", headers=user.headers)
    assert r.status_code == 204, r.text
    assert list(s3.client.list_objects(s3.bucket, recursive=True)) == []
