"""Downloading a document's original file: exact bytes, type, name, ownership, missing blobs."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest

from botgpt.documents.storage import BlobNotFound, LocalBlobStore
from tests.conftest import AuthedUser, UserFactory
from tests.documents import samples
from tests.documents.conftest import Docs


def _url(document_id: str) -> str:
    return f"/api/v1/documents/{document_id}/file"


async def test_download_returns_the_uploaded_bytes(
    docs: Docs, client: httpx.AsyncClient, user: AuthedUser
) -> None:
    data = samples.make_pdf(["Kelp forests shelter sea otters from storms."])
    r = await docs.upload(user, "kelp forest.pdf", data, "application/pdf")
    assert r.status_code == 201, r.text
    doc_id = r.json()["id"]
    r = await client.get(_url(doc_id), headers=user.headers)
    assert r.status_code == 200, r.text
    assert r.content == data
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-length"] == str(len(data))
    assert r.headers["content-disposition"] == 'attachment; filename="kelp forest.pdf"'
    assert r.headers["content-security-policy"] == "sandbox"
    await docs.wait(user, doc_id)


async def test_download_names_non_ascii_files_per_rfc_5987(
    docs: Docs, client: httpx.AsyncClient, user: AuthedUser
) -> None:
    data = "Crème brûlée needs a blowtorch.\n".encode()
    r = await docs.upload(user, "résumé 2024.txt", data, "text/plain; charset=utf-8")
    assert r.status_code == 201, r.text
    doc_id = r.json()["id"]
    r = await client.get(_url(doc_id), headers=user.headers)
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    disposition = r.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="r_sum_ 2024.txt"; ')
    encoded = disposition.split("filename*=", 1)[1]
    assert encoded.startswith("UTF-8''") and " " not in encoded
    assert unquote(encoded.removeprefix("UTF-8''")) == "résumé 2024.txt"
    await docs.wait(user, doc_id)


async def test_unusable_declared_type_falls_back_to_the_detected_one(
    docs: Docs, client: httpx.AsyncClient, user: AuthedUser
) -> None:
    r = await docs.upload(user, "plain.txt", b"Just some plain words.", "not a media type")
    assert r.status_code == 201, r.text
    doc_id = r.json()["id"]
    r = await client.get(_url(doc_id), headers=user.headers)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain"
    await docs.wait(user, doc_id)


async def test_another_users_document_file_is_404(
    docs: Docs, client: httpx.AsyncClient, user: AuthedUser, users: UserFactory
) -> None:
    r = await docs.upload(user, "mine.txt", b"Private minutes of the board meeting.")
    doc_id = r.json()["id"]
    intruder = await users.create()
    r = await client.get(_url(doc_id), headers=intruder.headers)
    assert r.status_code == 404
    assert b"board meeting" not in r.content
    assert (await client.get(_url("no-such-document"), headers=user.headers)).status_code == 404
    assert (await client.get(_url(doc_id))).status_code == 401
    # A normal user may not name another user to get at their files.
    r = await client.get(_url(doc_id), headers=intruder.headers, params={"user_id": user.id})
    assert r.status_code == 403
    await docs.wait(user, doc_id)


async def test_service_key_downloads_for_the_user_it_acts_for(
    docs: Docs, client: httpx.AsyncClient, admin_key: str
) -> None:
    headers = {"X-API-Key": admin_key}
    data = b"Notes of an external user about migrating whales."
    r = await docs.upload(headers, "whales.txt", data, "text/plain", form={"user_id": "ext-dl-1"})
    assert r.status_code == 201, r.text
    doc_id = r.json()["id"]
    r = await client.get(_url(doc_id), headers=headers, params={"user_id": "ext-dl-1"})
    assert r.status_code == 200 and r.content == data
    # Without user_id the service key acts on the document by id (issue 12) ...
    r = await client.get(_url(doc_id), headers=headers)
    assert r.status_code == 200 and r.content == data
    # ... and naming someone else than its owner is a 404.
    r = await client.get(_url(doc_id), headers=headers, params={"user_id": "ext-dl-2"})
    assert r.status_code == 404
    await docs.wait(headers, doc_id, user_id="ext-dl-1")


async def test_missing_file_is_404_not_500(
    docs: Docs, client: httpx.AsyncClient, user: AuthedUser
) -> None:
    done = await docs.ingest(user, "gone.txt", b"A file that disappears from the disk.")
    await docs.jobs.join()
    (docs.uploads / user.id / done["id"]).unlink()
    r = await client.get(_url(done["id"]), headers=user.headers)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


async def test_local_store_streams_large_blobs_in_chunks(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = os.urandom(700 * 1024)
    await store.put("owner/big", data)
    blob = await store.open("owner/big")
    assert blob.size == len(data)
    pieces = [piece async for piece in blob.chunks]
    assert len(pieces) > 1 and b"".join(pieces) == data
    with pytest.raises(BlobNotFound):
        await store.open("owner/missing")
