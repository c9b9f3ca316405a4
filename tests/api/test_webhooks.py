"""Outgoing webhooks: CRUD and ownership, validation and private-address refusal, signed
deliveries of turn events to a real local receiver, retries, failures, pings and resuming
pending deliveries; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from botgpt.webhooks.service import Dispatcher
from tests.conftest import AppCtx, AuthedUser, UserFactory
from tests.fakes.openai_server import Reply, ScriptedHTTPServer

URL = "/api/v1/webhooks"
PUBLIC_URL = "https://93.184.215.14/hook"  # a public IP literal: no DNS needed

Deliveries = list[dict[str, Any]]


@pytest.fixture
def allow_private(ctx: AppCtx) -> Iterator[None]:
    """Let webhooks reach 127.0.0.1 (the local receiver) for the test."""
    settings = ctx.app.state.container.settings
    before = settings.webhooks_allow_private
    settings.webhooks_allow_private = True
    yield
    settings.webhooks_allow_private = before


def _dispatcher(ctx: AppCtx) -> Dispatcher:
    dispatcher: Dispatcher = ctx.app.state.container.webhooks
    return dispatcher


@pytest.fixture
async def dispatcher(ctx: AppCtx, allow_private: None) -> AsyncIterator[Dispatcher]:
    """The app's dispatcher, started with fast retries and wired to the event sources."""
    services = ctx.app.state.container
    dispatcher = _dispatcher(ctx)
    sources = [services.chat, services.docs.ingestor]
    before = [getattr(s, "on_event", None) for s in sources]
    for source in sources:
        source.on_event = dispatcher.emit
    delay, dispatcher.base_delay = dispatcher.base_delay, 0.05
    await dispatcher.start()
    yield dispatcher
    await dispatcher.stop()
    dispatcher.base_delay = delay
    for source, sink in zip(sources, before, strict=True):
        if sink is None:
            del source.on_event
        else:
            source.on_event = sink


@pytest.fixture
async def receiver() -> AsyncIterator[ScriptedHTTPServer]:
    """A real HTTP server on 127.0.0.1 answering 200 unless scripted otherwise."""
    async with ScriptedHTTPServer(lambda _req: Reply.json(200, {"ok": True})) as server:
        yield server


async def make(
    client: httpx.AsyncClient, owner: AuthedUser, url: str, **fields: Any
) -> dict[str, Any]:
    """Create a webhook through the API and return its body."""
    r = await client.post(URL, json={"url": url, **fields}, headers=owner.headers)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def wait_for(
    client: httpx.AsyncClient,
    owner: AuthedUser,
    hook_id: str,
    done: Callable[[Deliveries], bool],
    within: float = 15.0,
) -> Deliveries:
    """Poll the deliveries endpoint until `done` holds for its items."""
    deadline = time.monotonic() + within
    while True:
        r = await client.get(f"{URL}/{hook_id}/deliveries", headers=owner.headers)
        assert r.status_code == 200, r.text
        items: Deliveries = r.json()["items"]
        if done(items):
            return items
        assert time.monotonic() < deadline, f"deliveries never settled: {items}"
        await asyncio.sleep(0.05)


def settled(count: int) -> Callable[[Deliveries], bool]:
    """`count` deliveries, none pending."""
    return lambda items: len(items) == count and all(d["status"] != "pending" for d in items)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def test_crud_secret_once_and_ownership(
    client: httpx.AsyncClient, users: UserFactory, admin_key: str
) -> None:
    owner, other = await users.create(), await users.create()
    created = await make(client, owner, PUBLIC_URL, events=["message.completed"])
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 30
    assert created["user_id"] == owner.id and created["active"] is True
    assert created["events"] == ["message.completed"]
    hook_id = created["id"]

    r = await client.get(f"{URL}/{hook_id}", headers=owner.headers)
    assert r.status_code == 200 and "secret" not in r.json()
    r = await client.get(URL, headers=owner.headers)
    listed = r.json()
    assert listed["total"] == 1 and listed["pages"] == 1
    assert [h["id"] for h in listed["items"]] == [hook_id] and "secret" not in listed["items"][0]

    r = await client.patch(
        f"{URL}/{hook_id}",
        json={"events": ["document.ready", "document.ready"], "active": False},
        headers=owner.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["events"] == ["document.ready"] and r.json()["active"] is False
    r = await client.patch(
        f"{URL}/{hook_id}", json={"url": PUBLIC_URL + "2"}, headers=owner.headers
    )
    assert r.json()["url"] == PUBLIC_URL + "2" and "secret" not in r.json()

    for method, path in [
        ("GET", f"{URL}/{hook_id}"),
        ("PATCH", f"{URL}/{hook_id}"),
        ("DELETE", f"{URL}/{hook_id}"),
        ("GET", f"{URL}/{hook_id}/deliveries"),
        ("POST", f"{URL}/{hook_id}/test"),
    ]:
        json_body = {"active": True} if method == "PATCH" else None
        r = await client.request(method, path, json=json_body, headers=other.headers)
        assert r.status_code == 404, (method, path, r.text)
    assert (await client.get(URL, headers=other.headers)).json()["total"] == 0

    # A service key acts for a user through `user_id`.
    r = await client.post(
        URL,
        params={"user_id": other.id},
        json={"url": PUBLIC_URL},
        headers={"X-API-Key": admin_key},
    )
    assert r.status_code == 201 and r.json()["user_id"] == other.id

    r = await client.delete(f"{URL}/{hook_id}", headers=owner.headers)
    assert r.status_code == 204
    assert (await client.get(f"{URL}/{hook_id}", headers=owner.headers)).status_code == 404


async def test_invalid_events_urls_and_private_addresses(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    bad = [
        {"url": PUBLIC_URL, "events": ["message.exploded"]},
        {"url": PUBLIC_URL, "events": "message.completed"},
        {"url": "ftp://93.184.215.14/hook"},
        {"url": "not a url"},
        {"url": "https://user:pw@93.184.215.14/hook"},
    ]
    for body in bad:
        r = await client.post(URL, json=body, headers=user.headers)
        assert r.status_code == 422, (body, r.text)
    for private in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "https://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:192.168.0.1]/hook",
        "http://0.0.0.0/hook",
    ]:
        r = await client.post(URL, json={"url": private}, headers=user.headers)
        assert r.status_code == 422, (private, r.text)
    hook = await make(client, user, PUBLIC_URL)
    for patch in [{"url": "http://192.168.1.1/"}, {"url": None}, {"events": ["nope"]}]:
        r = await client.patch(f"{URL}/{hook['id']}", json=patch, headers=user.headers)
        assert r.status_code == 422, (patch, r.text)
    assert (await client.get(URL, headers=user.headers)).json()["total"] == 1


async def test_a_turn_delivers_signed_events_to_subscribers_only(
    client: httpx.AsyncClient,
    user: AuthedUser,
    dispatcher: Dispatcher,
    receiver: ScriptedHTTPServer,
) -> None:
    hook = await make(
        client,
        user,
        receiver.base_url + "/hook",
        events=["conversation.created", "message.completed"],
    )
    docs_only = await make(client, user, receiver.base_url + "/docs", events=["document.ready"])
    r = await client.post(
        "/api/v1/conversations", json={"first_message": "hi"}, headers=user.headers
    )
    assert r.status_code == 201, r.text
    cid = r.json()["conversation_id"]

    items = await wait_for(client, user, hook["id"], settled(2))
    assert {d["event"] for d in items} == {"conversation.created", "message.completed"}
    assert all(d["status"] == "delivered" and d["attempts"] == 1 for d in items)
    assert all(d["last_status_code"] == 200 and d["delivered_at"] for d in items)
    assert items[0]["created_at"] >= items[1]["created_at"]  # newest first

    sent = [q for q in receiver.requests if q.path == "/hook"]
    assert sorted(q.headers["x-botgpt-event"] for q in sent) == sorted(d["event"] for d in items)
    for request in sent:
        assert request.method == "POST"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"] == "botgpt-webhooks"
        assert request.headers["x-botgpt-signature"] == signature(hook["secret"], request.body)
        body = request.json()
        assert body["event"] == request.headers["x-botgpt-event"]
        assert body["id"] == request.headers["x-botgpt-delivery"]
        assert body["id"] in {d["id"] for d in items}
        assert body["data"]["conversation_id"] == cid and body["created_at"]
    completed = next(q.json() for q in sent if q.headers["x-botgpt-event"] == "message.completed")
    assert completed["data"]["status"] == "complete"

    # The document.ready-only webhook was matched against the same events and got none.
    assert not [q for q in receiver.requests if q.path == "/docs"]
    r = await client.get(f"{URL}/{docs_only['id']}/deliveries", headers=user.headers)
    assert r.json()["total"] == 0


async def test_server_errors_are_retried_until_delivered(
    client: httpx.AsyncClient,
    user: AuthedUser,
    dispatcher: Dispatcher,
    receiver: ScriptedHTTPServer,
) -> None:
    hook = await make(client, user, receiver.base_url + "/hook", events=["conversation.created"])
    receiver.replies.extend([Reply.json(500, {"error": "x"}), Reply.json(500, {"error": "y"})])
    r = await client.post(
        "/api/v1/conversations", json={"first_message": "hi"}, headers=user.headers
    )
    assert r.status_code == 201
    (delivery,) = await wait_for(client, user, hook["id"], settled(1))
    assert delivery["status"] == "delivered" and delivery["attempts"] == 3
    assert delivery["last_status_code"] == 200 and delivery["last_error"] is None
    assert len(receiver.requests) == 3
    assert {q.headers["x-botgpt-delivery"] for q in receiver.requests} == {delivery["id"]}
    assert len({q.body for q in receiver.requests}) == 1  # the same signed body each time


async def test_a_client_error_fails_at_once(
    client: httpx.AsyncClient,
    user: AuthedUser,
    dispatcher: Dispatcher,
    receiver: ScriptedHTTPServer,
) -> None:
    hook = await make(client, user, receiver.base_url + "/hook")
    receiver.replies.append(Reply.json(400, {"error": "bad"}))
    r = await client.post(f"{URL}/{hook['id']}/test", headers=user.headers)
    assert r.status_code == 202
    (delivery,) = await wait_for(client, user, hook["id"], settled(1))
    assert delivery["status"] == "failed" and delivery["attempts"] == 1
    assert delivery["last_status_code"] == 400 and delivery["last_error"] == "HTTP 400"
    assert delivery["delivered_at"] is None and len(receiver.requests) == 1


async def test_ping_is_delivered(
    client: httpx.AsyncClient,
    user: AuthedUser,
    dispatcher: Dispatcher,
    receiver: ScriptedHTTPServer,
) -> None:
    hook = await make(client, user, receiver.base_url + "/hook", events=["document.ready"])
    r = await client.post(f"{URL}/{hook['id']}/test", headers=user.headers)
    assert r.status_code == 202, r.text
    queued = r.json()
    assert queued["event"] == "ping" and queued["status"] == "pending"
    (delivery,) = await wait_for(client, user, hook["id"], settled(1))
    assert delivery["id"] == queued["id"] and delivery["status"] == "delivered"
    (request,) = receiver.requests
    assert request.headers["x-botgpt-event"] == "ping"
    assert request.headers["x-botgpt-signature"] == signature(hook["secret"], request.body)
    assert request.json()["data"] == {"webhook_id": hook["id"]}


async def test_private_addresses_are_refused_at_delivery_time(
    client: httpx.AsyncClient,
    user: AuthedUser,
    ctx: AppCtx,
    dispatcher: Dispatcher,
    receiver: ScriptedHTTPServer,
) -> None:
    hook = await make(client, user, receiver.base_url + "/hook")
    ctx.app.state.container.settings.webhooks_allow_private = False  # the fixture restores it
    r = await client.post(f"{URL}/{hook['id']}/test", headers=user.headers)
    assert r.status_code == 202
    (delivery,) = await wait_for(client, user, hook["id"], settled(1))
    assert delivery["status"] == "failed" and delivery["attempts"] == 1
    assert "non-public" in delivery["last_error"] and not receiver.requests


async def test_pending_deliveries_are_sent_at_the_next_start(
    client: httpx.AsyncClient,
    user: AuthedUser,
    ctx: AppCtx,
    allow_private: None,
    receiver: ScriptedHTTPServer,
) -> None:
    dispatcher = _dispatcher(ctx)
    assert not dispatcher.running
    hook = await make(client, user, receiver.base_url + "/hook")
    r = await client.post(f"{URL}/{hook['id']}/test", headers=user.headers)
    assert r.status_code == 202
    await asyncio.sleep(0.1)
    (pending,) = (await client.get(f"{URL}/{hook['id']}/deliveries", headers=user.headers)).json()[
        "items"
    ]
    assert pending["status"] == "pending" and not receiver.requests
    dispatcher.emit(user.id, "conversation.created", {"conversation_id": "x"})  # stopped: no-op
    await dispatcher.start()
    try:
        (delivery,) = await wait_for(client, user, hook["id"], settled(1))
    finally:
        await dispatcher.stop()
    assert delivery["status"] == "delivered" and len(receiver.requests) == 1


async def test_events_of_users_without_webhooks_cost_no_lookup(
    dispatcher: Dispatcher, client: httpx.AsyncClient, users: Any, receiver: ScriptedHTTPServer
) -> None:
    with_hook, without = await users.create(), await users.create()
    for _ in range(500):  # the owners' list loads in the background right after start
        if dispatcher._owners is not None:
            break
        await asyncio.sleep(0.02)
    assert dispatcher._owners is not None
    await make(client, with_hook, receiver.base_url + "/hook")
    assert dispatcher._queue is not None
    queued = dispatcher._queue.qsize()
    dispatcher.emit(without.id, "message.completed", {})
    assert dispatcher._queue.qsize() == queued  # dropped at once: no webhook to look up
    dispatcher.emit(with_hook.id, "message.completed", {})  # known at once, from this process
    assert dispatcher._queue.qsize() == queued + 1
