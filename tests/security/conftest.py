"""Fixtures for access tests: a real server for WebSockets, and users owning one of everything."""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import jwt
import pytest

from tests.conftest import AppCtx, AuthedUser, UserFactory, serve_app

PUBLIC_HOOK = "https://93.184.215.14/hook"  # a public IP literal: no DNS needed


@dataclass
class Owned:
    """A user with one resource of every kind, each made through the API."""

    user: AuthedUser
    api_key: str  # a user (not service) key
    key_id: str
    conversation_id: str
    message_id: str  # the assistant reply of the first turn
    document_id: str
    faq_id: str
    webhook_id: str
    bot_id: str
    category_id: str

    @property
    def key_headers(self) -> dict[str, str]:
        """Headers authenticating with the user's API key."""
        return {"Authorization": f"Bearer {self.api_key}"}


async def make_owned(client: httpx.AsyncClient, users: UserFactory) -> Owned:
    """A fresh user and one of each resource it can own."""
    user = await users.create()
    h = user.headers
    r = await client.post("/api/v1/api-keys", json={"name": "mine"}, headers=h)
    assert r.status_code == 201, r.text
    key, key_id = r.json()["key"], r.json()["id"]
    r = await client.post("/api/v1/conversations", json={"first_message": "hello"}, headers=h)
    assert r.status_code == 201, r.text
    conversation_id = r.json()["conversation_id"]
    message_id = r.json()["assistant_message"]["id"]
    text = f"Private notes of {user.id}: {uuid.uuid4().hex}".encode()
    r = await client.post(
        "/api/v1/documents", files={"file": ("notes.txt", text, "text/plain")}, headers=h
    )
    assert r.status_code in (201, 202), r.text
    document_id = r.json()["id"]
    r = await client.post(
        "/api/v1/faqs", json={"question": "Where is my order?", "answer": "Here."}, headers=h
    )
    assert r.status_code == 201, r.text
    faq_id = r.json()["id"]
    r = await client.post("/api/v1/webhooks", json={"url": PUBLIC_HOOK}, headers=h)
    assert r.status_code == 201, r.text
    webhook_id = r.json()["id"]
    r = await client.post("/api/v1/bots", json={"name": "Helper"}, headers=h)
    assert r.status_code == 201, r.text
    bot_id = r.json()["id"]
    r = await client.post("/api/v1/faqs/categories", json={"name": "billing"}, headers=h)
    assert r.status_code == 201, r.text
    category_id = r.json()["id"]
    return Owned(
        user,
        key,
        key_id,
        conversation_id,
        message_id,
        document_id,
        faq_id,
        webhook_id,
        bot_id,
        category_id,
    )


def _b64(data: dict[str, object]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def bad_credentials(
    ctx: AppCtx, client: httpx.AsyncClient, users: UserFactory, victim: AuthedUser
) -> dict[str, str]:
    """Credentials every authenticated route must refuse with 401, by name."""
    holder = await users.create()
    claims = jwt.decode(holder.access_token, options={"verify_signature": False})
    secret = ctx.settings.jwt_key()
    now = int(time.time())
    header, _, signature = holder.access_token.split(".")
    forged_payload = _b64({**claims, "sub": victim.id})
    creds = {
        "garbage": "not-a-token",
        "unknown_api_key": "bgpt_" + secrets.token_urlsafe(32),
        "expired": jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, secret, "HS256"),
        "tampered": f"{header}.{forged_payload}.{signature}",
        "alg_none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{forged_payload}.",
        "other_secret": jwt.encode(claims, secrets.token_urlsafe(40), "HS256"),
        "refresh_as_access": holder.refresh_token,
    }
    # A revoked API key.
    r = await client.post("/api/v1/api-keys", json={"name": "old"}, headers=holder.headers)
    creds["revoked_api_key"] = r.json()["key"]
    r = await client.delete(f"/api/v1/api-keys/{r.json()['id']}", headers=holder.headers)
    assert r.status_code == 204, r.text
    # A logged-out session's access token (the holder's own, still unexpired).
    r = await client.post("/api/v1/auth/logout", headers=holder.headers)
    assert r.status_code == 204, r.text
    creds["logged_out"] = holder.access_token
    # The token and key of an erased account.
    gone = await users.create()
    r = await client.post("/api/v1/api-keys", json={"name": "gone"}, headers=gone.headers)
    creds["erased_account_key"] = r.json()["key"]
    r = await client.delete("/api/v1/users/me", headers=gone.headers)
    assert r.status_code == 204, r.text
    creds["erased_account_token"] = gone.access_token
    return creds


@pytest.fixture
async def live(ctx: AppCtx) -> AsyncIterator[str]:
    """A real uvicorn server on 127.0.0.1 serving the test app; its ws:// base URL."""
    async with serve_app(ctx.app) as port:
        yield f"ws://127.0.0.1:{port}"
