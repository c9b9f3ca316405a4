"""Accounts: register, login, refresh rotation, logout revocation, JWT checks, API keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import jwt

from tests.conftest import AppCtx, AuthedUser, UserFactory


async def test_register_login_me(client: httpx.AsyncClient, user: AuthedUser) -> None:
    r = await client.get("/api/v1/users/me", headers=user.headers)
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == user.id and body["email"] == user.email
    assert "password" not in r.text and "password_hash" not in body


async def test_register_validation_and_duplicate(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    r = await client.post("/api/v1/auth/register", json={"email": "nope", "password": "x"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"
    r = await client.post(
        "/api/v1/auth/register", json={"email": user.email, "password": "another password"}
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflict"


async def test_login_wrong_password(client: httpx.AsyncClient, user: AuthedUser) -> None:
    r = await client.post("/api/v1/auth/login", json={"email": user.email, "password": "wrong!!"})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "Wrong email or password."


async def test_unauthenticated_and_garbage_token(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/users/me")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"
    r = await client.get("/api/v1/users/me", headers={"Authorization": "Bearer not-a-jwt"})
    assert r.status_code == 401


async def test_tampered_and_expired_jwt_refused(
    client: httpx.AsyncClient, user: AuthedUser, ctx: AppCtx
) -> None:
    head, payload, sig = user.access_token.split(".")
    tampered = f"{head}.{payload}.{sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BB'}"
    r = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {tampered}"})
    assert r.status_code == 401
    claims = jwt.decode(user.access_token, options={"verify_signature": False})
    claims["exp"] = datetime.now(UTC) - timedelta(minutes=1)
    expired = jwt.encode(claims, ctx.settings.jwt_key(), algorithm="HS256")
    r = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401
    assert "expired" in r.json()["error"]["message"]
    forged = jwt.encode({**claims, "exp": datetime.now(UTC) + timedelta(minutes=5)}, "x" * 40)
    r = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


async def test_refresh_rotates_and_reuse_kills_session(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert r.status_code == 200
    new = r.json()
    assert new["refresh_token"] != user.refresh_token
    # The old refresh token no longer works, and presenting it ends the session.
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert r.status_code == 401
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": new["refresh_token"]})
    assert r.status_code == 401


async def test_logout_revokes_access_and_refresh(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    assert (await client.get("/api/v1/users/me", headers=user.headers)).status_code == 200
    r = await client.post("/api/v1/auth/logout", headers=user.headers)
    assert r.status_code == 204
    r = await client.get("/api/v1/users/me", headers=user.headers)
    assert r.status_code == 401
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert r.status_code == 401


async def test_api_keys_lifecycle(client: httpx.AsyncClient, user: AuthedUser) -> None:
    r = await client.post("/api/v1/api-keys", json={"name": "ci"}, headers=user.headers)
    assert r.status_code == 201
    created = r.json()
    key = created["key"]
    assert key.startswith("bgpt_") and created["prefix"] == key[:12]
    r = await client.get("/api/v1/users/me", headers={"X-API-Key": key})
    assert r.status_code == 200 and r.json()["id"] == user.id
    r = await client.get("/api/v1/api-keys", headers=user.headers)
    assert r.status_code == 200
    listed = r.json()
    assert listed["total"] == 1 and "key" not in listed["items"][0]
    assert key not in r.text
    r = await client.delete(f"/api/v1/api-keys/{created['id']}", headers=user.headers)
    assert r.status_code == 204
    r = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 401


async def test_api_key_of_other_user_is_404(client: httpx.AsyncClient, users: UserFactory) -> None:
    a, b = await users.create(), await users.create()
    r = await client.post("/api/v1/api-keys", json={"name": "a"}, headers=a.headers)
    r = await client.delete(f"/api/v1/api-keys/{r.json()['id']}", headers=b.headers)
    assert r.status_code == 404


async def test_service_key_requires_admin(client: httpx.AsyncClient, user: AuthedUser) -> None:
    r = await client.post(
        "/api/v1/api-keys", json={"name": "svc", "service": True}, headers=user.headers
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"
