"""Bots: CRUD in both path shapes, the provider key encrypted and never shown, versions and
restore, ownership; on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import AppCtx, AuthedUser, UserFactory

KEY = "sk-live-bot-provider-key-7788"


async def _create(client: httpx.AsyncClient, user: AuthedUser, **fields: Any) -> dict[str, Any]:
    r = await client.post("/api/v1/bots", json={"name": "Helpdesk", **fields}, headers=user.headers)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_seed_shape_create_returns_deployment_codes_and_hides_the_key(
    client: httpx.AsyncClient, user: AuthedUser, ctx: AppCtx, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        r = await client.post(
            "/api/bots",
            json={
                "name": "Support bot",
                "provider": "openai",
                "api_key": KEY,
                "prompt": "You answer questions about Acme.",
                "widget_color": "#ff6600",
            },
            headers=user.headers,
        )
    assert r.status_code == 201, r.text
    bot = r.json()
    assert bot["system_prompt"] == "You answer questions about Acme."
    assert bot["has_api_key"] is True and bot["api_key_last4"] == "7788"
    assert bot["widget"]["primary_color"] == "#ff6600"
    assert bot["deployment"]["chat_url"].endswith(f"/chat/{bot['id']}")
    assert f'data-bot-id="{bot["id"]}"' in bot["deployment"]["embed_code"]
    assert "widget.js" in bot["deployment"]["embed_code"]
    assert len(bot["signing_secret"]) >= 32
    # Both path shapes see it; the key is in no response and no log line.
    for path in (f"/api/bots/{bot['id']}", f"/api/v1/bots/{bot['id']}"):
        got = await client.get(path, headers=user.headers)
        assert got.status_code == 200 and KEY not in got.text and "signing_secret" not in got.json()
    listed = await client.get("/api/bots", headers=user.headers)
    assert listed.json()["total"] == 1 and KEY not in listed.text
    assert KEY not in caplog.text
    # Stored encrypted: the raw column is a Fernet token, not the key.
    async with ctx.app.state.container.engine.connect() as conn:
        raw = (
            await conn.execute(
                text("SELECT api_key_encrypted, signing_secret_encrypted FROM bots WHERE id = :i"),
                {"i": bot["id"]},
            )
        ).one()
    assert KEY not in raw[0] and raw[0].startswith("gAAAA")
    assert bot["signing_secret"] not in raw[1]
    assert ctx.app.state.container.bots.provider_key(await _load(ctx, bot["id"])) == KEY


async def _load(ctx: AppCtx, bot_id: str) -> Any:
    from botgpt.bots.models import Bot

    async with ctx.app.state.container.sessions() as db:
        return await db.get(Bot, bot_id)


async def test_update_versions_and_restore(client: httpx.AsyncClient, user: AuthedUser) -> None:
    bot = await _create(client, user, system_prompt="Version one prompt.", temperature=0.2)
    assert bot["version"] == 1
    url = f"/api/v1/bots/{bot['id']}"
    r = await client.patch(url, json={"system_prompt": "Version two prompt."}, headers=user.headers)
    assert r.json()["version"] == 2
    # Widget and origins are not persona changes: no new version.
    r = await client.put(
        url,
        json={"allowed_origins": ["https://www.Example.com/"], "starters": ["Hi?"]},
        headers=user.headers,
    )
    assert r.status_code == 200 and r.json()["version"] == 2
    assert r.json()["allowed_origins"] == ["https://www.example.com"]
    r = await client.patch(url, json={"api_key": KEY, "model": "gpt-4o-mini"}, headers=user.headers)
    assert r.json()["version"] == 3
    versions = (await client.get(f"{url}/versions", headers=user.headers)).json()
    assert [v["number"] for v in versions["items"]] == [3, 2, 1]
    assert set(versions["items"][0]["changed"]) == {"api_key", "model"}
    assert versions["items"][0]["created_by"] == user.id
    assert KEY not in str(versions) and versions["items"][0]["settings"]["has_api_key"] is True
    r = await client.post(f"{url}/versions/1/restore", headers=user.headers)
    assert r.status_code == 200, r.text
    restored = r.json()
    assert restored["system_prompt"] == "Version one prompt." and restored["version"] == 4
    assert restored["has_api_key"] is False and restored["model"] == ""
    assert (
        await client.post(f"{url}/versions/99/restore", headers=user.headers)
    ).status_code == 404


async def test_validation(client: httpx.AsyncClient, user: AuthedUser) -> None:
    for bad in (
        {"name": ""},
        {"name": "x", "starters": [f"q{i}" for i in range(7)]},
        {"name": "x", "allowed_origins": ["https://example.com/path"]},
        {"name": "x", "widget": {"primary_color": "red"}},
        {"name": "x", "provider": "skynet"},
        {"name": "x", "unknown_field": 1},
    ):
        r = await client.post("/api/v1/bots", json=bad, headers=user.headers)
        assert r.status_code == 422, bad


async def test_another_owner_sees_404_and_delete_keeps_documents(
    client: httpx.AsyncClient, user: AuthedUser, users: UserFactory
) -> None:
    bot = await _create(client, user)
    other = await users.create()
    url = f"/api/v1/bots/{bot['id']}"
    for method, path in (
        ("GET", url),
        ("PATCH", url),
        ("DELETE", url),
        ("GET", f"{url}/versions"),
        ("POST", f"{url}/versions/1/restore"),
        ("POST", f"{url}/signing-secret"),
    ):
        r = await client.request(
            method, path, json={} if method == "PATCH" else None, headers=other.headers
        )
        assert r.status_code == 404, (method, path)
    # Knowledge must be the owner's own documents.
    r = await client.post(
        "/api/v1/bots", json={"name": "x", "document_ids": ["nope"]}, headers=user.headers
    )
    assert r.status_code == 404
    assert (await client.delete(url, headers=user.headers)).status_code == 204
    assert (await client.get(url, headers=user.headers)).status_code == 404


async def test_signing_secret_rotation(client: httpx.AsyncClient, user: AuthedUser) -> None:
    bot = await _create(client, user)
    r = await client.post(f"/api/v1/bots/{bot['id']}/signing-secret", headers=user.headers)
    assert r.status_code == 200 and r.json()["signing_secret"] != bot["signing_secret"]
