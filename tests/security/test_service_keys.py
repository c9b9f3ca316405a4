"""Seed clients under a service key act on what they created (issue 12, items 1 and 2)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from botgpt.auth.models import User
from botgpt.llm.fake import FakeProvider
from tests.conftest import AppCtx, AuthedUser, UserFactory
from tests.security.conftest import make_owned


@pytest.fixture
def service(admin_key: str) -> dict[str, str]:
    """Headers of a service (admin) key."""
    return {"Authorization": f"Bearer {admin_key}"}


async def users_named(ctx: AppCtx, external_id: str) -> int:
    """How many users carry this external id."""
    from sqlalchemy import func, select

    async with ctx.app.state.container.sessions() as db:
        found = await db.execute(select(func.count()).where(User.external_id == external_id))
        return int(found.scalar_one())


@pytest.mark.parametrize("base", ["/conversations", "/api/v1/conversations"])
async def test_seed_000_service_key_flow(
    base: str, client: httpx.AsyncClient, service: dict[str, str], fake: FakeProvider
) -> None:
    """Seed 000's requests, unchanged: create with user_id, then act by id alone."""
    user_ref = f"seed-user-{base.count('/')}-{id(client)}"
    fake.enqueue("Welcome!", "Second answer.")
    r = await client.post(
        base, json={"user_id": user_ref, "first_message": "Hi", "mode": "open"}, headers=service
    )
    assert r.status_code == 201, r.text
    cid = r.json()["conversation_id"]

    r = await client.get(base, params={"user_id": user_ref}, headers=service)
    assert r.status_code == 200 and [c["id"] for c in r.json()["items"]] == [cid]

    r = await client.get(f"{base}/{cid}", headers=service)  # no user_id: the owner's
    assert r.status_code == 200, r.text
    owner = r.json()["user_id"]
    assert [m["content"] for m in r.json()["messages"]] == ["Hi", "Welcome!"]

    r = await client.put(f"{base}/{cid}/messages", json={"message": "More?"}, headers=service)
    assert r.status_code == 200, r.text
    assert r.json()["assistant_response"] == "Second answer."

    # A user_id in the body or the query must name the owner (its external id or its id).
    for body_user in (user_ref, owner):
        r = await client.put(
            f"{base}/{cid}/messages",
            json={"message": "And?", "user_id": body_user},
            headers=service,
        )
        assert r.status_code == 200, r.text
    r = await client.get(f"{base}/{cid}", params={"user_id": user_ref}, headers=service)
    assert r.status_code == 200

    r = await client.delete(f"{base}/{cid}", headers=service)
    assert r.status_code == 204
    r = await client.get(f"{base}/{cid}", headers=service)
    assert r.status_code == 404


async def test_a_named_user_who_is_not_the_owner_is_404(
    ctx: AppCtx, client: httpx.AsyncClient, service: dict[str, str], users: UserFactory
) -> None:
    owner, other = await users.create(), await users.create()
    r = await client.post(
        "/api/v1/conversations", json={"first_message": "mine"}, headers=owner.headers
    )
    cid = r.json()["conversation_id"]
    url = f"/api/v1/conversations/{cid}"
    for params, body in (
        ({"user_id": other.id}, None),
        ({}, {"user_id": other.id}),
        ({"user_id": "never-seen-before"}, None),
    ):
        r = await client.get(url, params=params, headers=service)
        if body is None:
            assert r.status_code == 404, r.text
        r = await client.put(
            f"{url}/messages", params=params, json={"message": "x", **(body or {})}, headers=service
        )
        assert r.status_code == 404, r.text
        r = await client.patch(
            url, params=params, json={"title": "t", **(body or {})}, headers=service
        )
        assert r.status_code == 404, r.text
        if body is None:  # (a DELETE has no body)
            r = await client.delete(url, params=params, headers=service)
            assert r.status_code == 404, r.text
    # Naming a user on a request about an existing resource provisions nobody.
    assert await users_named(ctx, "never-seen-before") == 0
    # The query and the body disagreeing is a client error.
    r = await client.patch(
        url, params={"user_id": owner.id}, json={"title": "t", "user_id": other.id}, headers=service
    )
    assert r.status_code == 422
    r = await client.get(url, headers=owner.headers)
    assert r.status_code == 200 and r.json()["title"] != "t"
    assert len(r.json()["messages"]) == 2


async def test_service_keys_act_on_every_kind_of_resource(
    client: httpx.AsyncClient, service: dict[str, str], users: UserFactory
) -> None:
    """Documents, FAQs, webhooks, replies: by id alone; a wrong user_id in a body is a 404."""
    owned = await make_owned(client, users)
    other = await users.create()
    checks: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"/api/v1/documents/{owned.document_id}", None),
        ("GET", f"/api/v1/documents/{owned.document_id}/file", None),
        ("GET", f"/api/v1/faqs/{owned.faq_id}", None),
        ("PATCH", f"/api/v1/faqs/{owned.faq_id}", {"answer": "By the service."}),
        ("GET", f"/api/v1/webhooks/{owned.webhook_id}", None),
        ("PATCH", f"/api/v1/webhooks/{owned.webhook_id}", {"active": False}),
        ("GET", f"/api/v1/webhooks/{owned.webhook_id}/deliveries", None),
        (
            "GET",
            f"/api/v1/conversations/{owned.conversation_id}/messages/{owned.message_id}/stream",
            None,
        ),
    ]
    for method, url, body in checks:
        r = await client.request(method, url, json=body, headers=service)
        assert r.status_code == 200, (method, url, r.text)
        if body is not None:
            r = await client.request(
                method, url, json={**body, "user_id": other.id}, headers=service
            )
            assert r.status_code == 404, (method, url, r.text)
    faq = await client.get(f"/api/v1/faqs/{owned.faq_id}", headers=owned.user.headers)
    assert faq.json()["answer"] == "By the service."
    hook = await client.get(f"/api/v1/webhooks/{owned.webhook_id}", headers=owned.user.headers)
    assert hook.json()["active"] is False
    r = await client.post(
        "/api/v1/chat/send",
        json={"message": "via chat/send", "conversation_id": owned.conversation_id},
        headers=service,
    )
    assert r.status_code == 200, r.text
    r = await client.delete(f"/api/v1/documents/{owned.document_id}", headers=service)
    assert r.status_code == 204


async def test_user_keys_and_tokens_stay_strict(
    client: httpx.AsyncClient, users: UserFactory, user: AuthedUser
) -> None:
    """A plain user's key cannot reach another user's resource, with or without user_id."""
    owned = await make_owned(client, users)
    r = await client.post("/api/v1/api-keys", json={"name": "k"}, headers=user.headers)
    key = {"Authorization": f"Bearer {r.json()['key']}"}
    for headers in (user.headers, key):
        url = f"/conversations/{owned.conversation_id}"
        assert (await client.get(url, headers=headers)).status_code == 404
        r = await client.get(url, params={"user_id": owned.user.id}, headers=headers)
        assert r.status_code == 403


async def test_unprefixed_paths_are_hidden_from_the_openapi(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/api/v1/conversations/{conversation_id}/messages" in paths
    assert not [p for p in paths if p.startswith("/conversations")]
