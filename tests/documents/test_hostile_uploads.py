"""Hostile uploads: endless and truncated multipart bodies; the upload limit stays its own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.api.test_hostile_requests import MB, envelope
from tests.conftest import AppCtx, AuthedUser
from tests.documents.conftest import Docs


async def test_uploads_keep_their_own_limit_above_the_json_one(
    docs: Docs, user: AuthedUser
) -> None:
    data = b"Whales sing in long structured phrases.\n" * 30_000  # 1.2 MB > 1 MB
    r = await docs.upload(user, "whales.txt", data, "text/plain")
    assert r.status_code == 201, r.text
    assert r.json()["size_bytes"] == len(data)
    # Not worth indexing: delete it (which also stops its ingestion).
    r = await docs.client.delete(f"/api/v1/documents/{r.json()['id']}", headers=user.headers)
    assert r.status_code == 204


async def test_endless_upload_stops_at_the_upload_limit(
    docs: Docs, client: httpx.AsyncClient, user: AuthedUser, ctx: AppCtx
) -> None:
    before = docs.upload_files()
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\n'
        while sent < 400 * MB:
            sent += MB
            yield b"w" * MB

    r = await client.post(
        "/api/v1/documents",
        content=endless(),
        headers={**user.headers, "Content-Type": "multipart/form-data; boundary=b0undary"},
    )
    envelope(r, 413, "payload_too_large")
    assert sent <= ctx.settings.max_upload_mb * MB + 2 * MB
    assert docs.upload_files() == before


def _multipart(boundary: str, data: bytes) -> bytes:
    return (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="cut.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode() + data


@pytest.mark.parametrize(
    "ending",
    [b"", b"\r\n", b"\r\n--XyZb0undary", b"\r\n--XyZb0undary\r\n"],
    ids=["cut-in-data", "cut-after-data", "boundary-without-close", "next-part-never-comes"],
)
async def test_multipart_without_its_closing_boundary_is_400_and_stores_nothing(
    docs: Docs, client: httpx.AsyncClient, user: AuthedUser, ending: bytes
) -> None:
    before = docs.upload_files()
    body = _multipart("XyZb0undary", b"Truncated minutes of the meeting." + ending)
    r = await client.post(
        "/api/v1/documents",
        content=body,
        headers={**user.headers, "Content-Type": "multipart/form-data; boundary=XyZb0undary"},
    )
    envelope(r, 400, "malformed_body")
    count = await docs.scalar("SELECT COUNT(*) FROM documents WHERE owner_id = :o", o=user.id)
    assert count == 0
    assert docs.upload_files() == before
    # The same body with its closing boundary is stored.
    complete = _multipart("XyZb0undary", b"Whole minutes of the meeting.\r\n--XyZb0undary--\r\n")
    r = await client.post(
        "/api/v1/documents",
        content=complete,
        headers={**user.headers, "Content-Type": "multipart/form-data; boundary=XyZb0undary"},
    )
    assert r.status_code == 201, r.text
    await docs.wait(user, r.json()["id"])
