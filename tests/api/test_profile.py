"""Seed 004's account data: username, full name, role (with the analyst), consents, last
sign-in, the role in the access token; unknown registration fields refused."""

from __future__ import annotations

import uuid

import httpx
import jwt

from tests.conftest import AuthedUser, UserFactory

REGISTER = "/api/v1/auth/register"


def _email() -> str:
    return f"p-{uuid.uuid4().hex[:10]}@example.com"


async def test_registration_stores_and_returns_the_profile(client: httpx.AsyncClient) -> None:
    email, name = _email(), f"ada_{uuid.uuid4().hex[:6]}"
    r = await client.post(
        REGISTER,
        json={
            "email": email,
            "password": "correct horse battery",
            "username": name,
            "full_name": "Ada Lovelace",
            "consents": [
                {"kind": "terms", "version": "2024-01"},
                {"kind": "privacy", "version": "v3"},
            ],
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["username"] == name and body["full_name"] == "Ada Lovelace"
    assert body["role"] == "user" and body["last_login_at"] is None
    assert {(c["kind"], c["version"]) for c in body["consents"]} == {
        ("terms", "2024-01"),
        ("privacy", "v3"),
    }
    r = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": "correct horse battery"}
    )
    token = r.json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["role"] == "user"
    me = (await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})).json()
    assert me["last_login_at"] is not None and me["username"] == name
    assert len(me["consents"]) == 2
    # The same username (any case) is taken.
    r = await client.post(
        REGISTER,
        json={"email": _email(), "password": "correct horse battery", "username": name.upper()},
    )
    assert r.status_code == 409 and r.json()["error"]["details"]["field"] == "username"


async def test_unknown_or_bad_registration_fields_are_422(client: httpx.AsyncClient) -> None:
    for extra in (
        {"nickname": "x"},
        {"role": "admin"},  # nobody makes themselves admin at sign-up
        {"username": "a b"},
        {"consents": [{"kind": "cookies", "version": "1"}]},
    ):
        r = await client.post(
            REGISTER, json={"email": _email(), "password": "correct horse battery", **extra}
        )
        assert r.status_code == 422, extra


async def test_consents_can_be_withdrawn_and_given_again(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    url = "/api/v1/users/me/consents"
    r = await client.post(url, json={"kind": "marketing", "version": "1"}, headers=user.headers)
    assert r.status_code == 201 and r.json()["withdrawn_at"] is None
    assert (await client.delete(f"{url}/marketing", headers=user.headers)).status_code == 204
    assert (await client.delete(f"{url}/marketing", headers=user.headers)).status_code == 404
    me = (await client.get("/api/v1/users/me", headers=user.headers)).json()
    assert me["consents"] == []
    await client.post(url, json={"kind": "marketing", "version": "2"}, headers=user.headers)
    history = (await client.get(url, headers=user.headers)).json()
    assert [(h["version"], h["withdrawn_at"] is None) for h in history] == [
        ("2", True),
        ("1", False),
    ]
    export = (await client.get("/api/v1/users/me/export", headers=user.headers)).json()
    assert len(export["consent_history"]) == 2


async def test_profile_update(client: httpx.AsyncClient, users: UserFactory) -> None:
    a, b = await users.create(), await users.create()
    handle = f"bob_{uuid.uuid4().hex[:6]}"
    r = await client.patch(
        "/api/v1/users/me", json={"username": handle, "full_name": "Bob B"}, headers=a.headers
    )
    assert r.status_code == 200 and r.json()["username"] == handle
    r = await client.patch("/api/v1/users/me", json={"username": handle}, headers=b.headers)
    assert r.status_code == 409
    r = await client.patch("/api/v1/users/me", json={"is_admin": True}, headers=b.headers)
    assert r.status_code == 422


async def test_analyst_reads_analytics_only(
    client: httpx.AsyncClient, users: UserFactory, admin_key: str
) -> None:
    analyst = await users.create()
    dashboard = "/api/v1/analytics/dashboard"
    assert (await client.get(dashboard, headers=analyst.headers)).status_code == 403
    # Only admins change roles.
    r = await client.patch(
        f"/api/v1/users/{analyst.id}/role", json={"role": "analyst"}, headers=analyst.headers
    )
    assert r.status_code == 403
    admin = {"Authorization": f"Bearer {admin_key}"}
    r = await client.patch(
        f"/api/v1/users/{analyst.id}/role", json={"role": "analyst"}, headers=admin
    )
    assert r.status_code == 200 and r.json()["role"] == "analyst" and not r.json()["is_admin"]
    assert (await client.get(dashboard, headers=analyst.headers)).status_code == 200
    # Still no admin powers: an analyst cannot make service keys.
    r = await client.post(
        "/api/v1/api-keys", json={"name": "x", "service": True}, headers=analyst.headers
    )
    assert r.status_code == 403
    r = await client.patch(f"/api/v1/users/{analyst.id}/role", json={"role": "root"}, headers=admin)
    assert r.status_code == 422
