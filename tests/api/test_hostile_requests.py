"""Hostile requests: oversized and endless bodies, broken JSON and multipart, NUL characters."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import AppCtx, AuthedUser, ConversationFactory

MB = 1024 * 1024


def envelope(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body


class CountingBody:
    """A chunked request body of `total` bytes that records how much the server pulled."""

    def __init__(self, total: int, chunk: int = 256 * 1024) -> None:
        self.total = total
        self.chunk = chunk
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        # A JSON document whose one string goes on and on: valid only if read to the end.
        yield b'{"first_message": "'
        while self.sent < self.total:
            self.sent += self.chunk
            yield b"a" * self.chunk
        yield b'"}'


# --------------------------------------------------------------------------- body limit


async def test_json_body_over_the_limit_is_413_from_content_length(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    body = json.dumps({"first_message": "x" * (MB + 10)}).encode()
    r = await client.post(
        "/api/v1/conversations",
        content=body,
        headers={**user.headers, "Content-Type": "application/json"},
    )
    envelope(r, 413, "payload_too_large")
    listed = await client.get("/api/v1/conversations", headers=user.headers)
    assert listed.json()["total"] == 0


async def test_chunked_body_without_length_is_cut_off_while_reading(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    # 400 MB offered without Content-Length: the server must stop pulling just past 1 MB.
    body = CountingBody(400 * MB)
    r = await client.post(
        "/api/v1/conversations",
        content=body,  # type: ignore[arg-type]
        headers={**user.headers, "Content-Type": "application/json"},
    )
    envelope(r, 413, "payload_too_large")
    assert body.sent <= 2 * MB, f"the server read {body.sent} bytes"
    listed = await client.get("/api/v1/conversations", headers=user.headers)
    assert listed.json()["total"] == 0


async def test_body_limit_is_a_setting_and_small_bodies_pass(
    client: httpx.AsyncClient, user: AuthedUser, ctx: AppCtx
) -> None:
    assert ctx.settings.max_body_mb == 1.0  # the default
    r = await client.post(
        "/api/v1/conversations", json={"first_message": "x" * 90_000}, headers=user.headers
    )
    assert r.status_code == 201, r.text


# --------------------------------------------------------------------------- malformed bodies


@pytest.mark.parametrize(
    "raw", [b"{not json", b'{"first_message": "hi"', b"\xff\xfe\x00", b'{"a": 1}}']
)
async def test_malformed_json_is_400_with_the_envelope(
    client: httpx.AsyncClient, user: AuthedUser, raw: bytes
) -> None:
    r = await client.post(
        "/api/v1/conversations",
        content=raw,
        headers={**user.headers, "Content-Type": "application/json"},
    )
    envelope(r, 400, "invalid_json")
    # JSON of the wrong shape stays a 422.
    r = await client.post("/api/v1/conversations", json={"first_message": 5}, headers=user.headers)
    envelope(r, 422, "validation_error")


# --------------------------------------------------------------------------- NUL characters

NUL_TEXT = "bad\x00text"


async def _nul_cases(
    client: httpx.AsyncClient, user: AuthedUser, conversations: ConversationFactory
) -> list[tuple[str, str, dict[str, Any]]]:
    conv = await conversations.create(user)
    cid = conv["conversation_id"] if "conversation_id" in conv else conv["id"]
    return [
        ("POST", "/api/v1/conversations", {"json": {"first_message": NUL_TEXT}}),
        ("POST", "/api/v1/conversations", {"json": {"first_message": "ok", "title": NUL_TEXT}}),
        ("POST", "/api/v1/conversations", {"json": {"message": "ok", "user_id": NUL_TEXT}}),
        ("POST", "/api/v1/conversations", {"json": {"message": "ok", "document_ids": [NUL_TEXT]}}),
        ("POST", f"/api/v1/conversations/{cid}/messages", {"json": {"content": NUL_TEXT}}),
        ("PUT", f"/api/v1/conversations/{cid}/messages", {"json": {"message": NUL_TEXT}}),
        ("PATCH", f"/api/v1/conversations/{cid}", {"json": {"title": NUL_TEXT}}),
        ("PUT", f"/api/v1/conversations/{cid}", {"json": {"title": NUL_TEXT}}),
        ("POST", "/api/v1/chat/send", {"json": {"message": NUL_TEXT}}),
        ("POST", "/api/v1/chat/send", {"json": {"message": "ok", "conversation_id": NUL_TEXT}}),
        ("POST", "/api/v1/faqs", {"json": {"question": "Why " + NUL_TEXT, "answer": "Because"}}),
        ("POST", "/api/v1/faqs", {"json": {"question": "Why?", "answer": NUL_TEXT}}),
        (
            "POST",
            "/api/v1/faqs",
            {"json": {"question": "Why?", "answer": "So", "category": NUL_TEXT}},
        ),
        (
            "POST",
            "/api/v1/faqs",
            {"json": {"question": "Why?", "answer": "So", "tags": [NUL_TEXT]}},
        ),
        ("POST", "/api/v1/webhooks", {"json": {"url": "https://example.com/" + NUL_TEXT}}),
        ("POST", "/api/v1/search", {"json": {"query": NUL_TEXT}}),
        (
            "POST",
            "/v1/chat/completions",
            {"json": {"model": "x", "messages": [{"role": "user", "content": NUL_TEXT}]}},
        ),
        (
            "POST",
            "/v1/chat/completions",
            {
                "json": {
                    "model": "x",
                    "messages": [{"role": "user", "content": [{"type": "text", "text": NUL_TEXT}]}],
                }
            },
        ),
        ("POST", "/v1/embeddings", {"json": {"model": "x", "input": [NUL_TEXT]}}),
        ("GET", "/api/v1/faqs/search", {"params": {"q": NUL_TEXT}}),
        ("GET", "/api/v1/conversations", {"params": {"user_id": NUL_TEXT}}),
        ("GET", "/api/v1/conversations/abc%00def", {}),
        ("GET", "/api/v1/documents/abc%00def", {}),
        ("DELETE", "/api/v1/faqs/abc%00def", {}),
    ]


async def test_nul_characters_are_422_on_every_text_field(
    client: httpx.AsyncClient, user: AuthedUser, conversations: ConversationFactory, ctx: AppCtx
) -> None:
    cases = await _nul_cases(client, user, conversations)
    before = (await client.get("/api/v1/conversations", headers=user.headers)).json()["total"]
    failures = []
    for method, url, kwargs in cases:
        r = await client.request(method, url, headers=user.headers, **kwargs)
        error = r.json()["error"]
        if url.startswith("/v1/"):
            # The OpenAI-compatible routes answer validation errors as OpenAI does: 400.
            refused = r.status_code == 400 and error["type"] == "invalid_request_error"
        elif r.status_code == 422 and error["details"][0]["loc"][0] == "body":
            refused = "NUL" in error["details"][0]["msg"]
        else:
            refused = r.status_code == 422 and error["code"] == "validation_error"
        if not refused:
            failures.append((method, url, kwargs, r.status_code, r.text[:200]))
    assert not failures, failures
    after = (await client.get("/api/v1/conversations", headers=user.headers)).json()["total"]
    assert after == before
    # The escaped form of a backslash followed by "u0000" is ordinary text.
    r = await client.post(
        "/api/v1/conversations", json={"first_message": "a literal \\u0000"}, headers=user.headers
    )
    assert r.status_code == 201, r.text


async def test_nul_in_auth_fields_is_never_a_server_error(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    # The auth schemas use the shared Text type: NUL is refused on every backend alike.
    cases = [
        (
            "/api/v1/auth/register",
            {"email": "nul@example.com", "password": "long enough pw", "display_name": NUL_TEXT},
        ),
        ("/api/v1/api-keys", {"name": NUL_TEXT}),
        ("/api/v1/auth/refresh", {"refresh_token": NUL_TEXT}),
        ("/api/v1/auth/login", {"email": "nul@example.com", "password": NUL_TEXT}),
    ]
    for url, body in cases:
        r = await client.post(url, json=body, headers=user.headers)
        assert r.status_code == 422, (url, r.text)
