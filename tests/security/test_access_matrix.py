"""The access matrix, generated from the app's own route table (issue 8).

Every route and WebSocket of `app.routes` is covered without anyone listing it: another
user's id is a 404 (a 403 where the route is admin-only), with login tokens and with API
keys; bad, expired, tampered, `alg: none`, revoked and logged-out credentials are a 401 on
every authenticated route. The only explicit tables say how to name a resource for each
path parameter and how to build a valid body for each request model; a route with a path
parameter or a body model they do not know fails `test_every_route_is_understood`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts

from botgpt.deps import get_principal
from tests.conftest import AppCtx, UserFactory
from tests.security.conftest import Owned, bad_credentials, make_owned

PATH_PARAM = re.compile(r"{(\w+)(?::\w+)?}")

# How to name a user's resource for each path parameter; None: not a per-user resource.
ID_OF: dict[str, Callable[[Owned], str] | None] = {
    "conversation_id": lambda o: o.conversation_id,
    "message_id": lambda o: o.message_id,
    "document_id": lambda o: o.document_id,
    "faq_id": lambda o: o.faq_id,
    "webhook_id": lambda o: o.webhook_id,
    "key_id": lambda o: o.key_id,
    "user_id": lambda o: o.user.id,
    "bot_id": lambda o: o.bot_id,
    "category_id": lambda o: o.category_id,
    "model_id": None,  # the served models are the same for everyone
    "number": None,  # a bot's version number: the bot's id says whose it is
    "kind": None,  # the caller's own consent of this kind
    "session_id": None,  # a bot visitor's session: a random capability of the public chat
    "name": None,  # a static file of the web pages: the same for everyone
}
# Path parameters naming a user: a route about another user is an admin's route (403).
ADMIN_PARAMS = {"user_id"}
# Values of the path parameters that do not name a per-user resource.
FIXED: dict[str, str] = {
    "model_id": "fake",
    "number": "1",
    "kind": "marketing",
    "session_id": "visitor-session-1",
    "name": "style.css",
}
# A valid body for each request model, so that the access check (not validation) answers.
BODY_OF: dict[str, dict[str, Any]] = {
    "ConversationUpdate": {"title": "renamed by someone else"},
    "MessageCreate": {"content": "written by someone else"},
    "FaqUpdate": {"answer": "changed by someone else"},
    "WebhookUpdate": {"active": False},
    "ConversationCreate": {"first_message": "hello"},
    "ChatSend": {"message": "hello"},
    "SearchRequest": {"query": "notes"},
    "FaqCreate": {"question": "Who?", "answer": "Me."},
    "WebhookCreate": {"url": "https://93.184.215.14/hook"},
    "ApiKeyCreate": {"name": "k"},
    "LogoutRequest": {},
    "ChatCompletionCreate": {"model": "fake", "messages": [{"role": "user", "content": "hi"}]},
    "EmbeddingCreate": {"input": "hi"},
    "UserCreate": {"email": "someone@example.com", "password": "long enough password"},
    "LoginRequest": {"email": "someone@example.com", "password": "long enough password"},
    "RefreshRequest": {"refresh_token": "x"},
    "UserUpdate": {"full_name": "Someone"},
    "ConsentGrant": {"kind": "marketing", "version": "v1"},
    "BotCreate": {"name": "Other bot"},
    "BotUpdate": {"name": "Renamed by someone else"},
    "FeedbackCreate": {"rating": "down"},
    "CategoryCreate": {"name": "other"},
    "CategoryUpdate": {"name": "renamed"},
    "FaqFeedback": {"helpful": False},
    "RoleUpdate": {"role": "admin"},
    "PublicMessage": {"message": "hello"},
    "VisitorFeedback": {"session_id": "visitor-session-1", "rating": "up"},
}
# A valid value for each required query parameter.
QUERY_OF: dict[str, str] = {"q": "order"}
# Routes documenting a multipart body (uploads) get this file.
UPLOAD = {"file": ("notes.txt", b"Some notes.", "text/plain")}
# WebSocket frames naming a resource of the user `Owned` (the attacker's own as `mine`).
WS_FRAMES: list[Callable[[Owned, Owned], dict[str, Any]]] = [
    lambda victim, mine: {
        "type": "message",
        "conversation_id": victim.conversation_id,
        "content": "hi",
    },
    lambda victim, mine: {"type": "cancel", "message_id": victim.message_id},
    lambda victim, mine: {
        "type": "cancel",
        "message_id": victim.message_id,
        "conversation_id": mine.conversation_id,
    },
]


@dataclass(frozen=True)
class Endpoint:
    """One method of one route, as the matrix sees it."""

    method: str  # "WS" for a WebSocket
    path: str
    params: tuple[str, ...]
    body_model: str | None
    authenticated: bool
    admin_only: bool
    acts_as: bool  # takes `user_id` in the query string
    required_query: tuple[str, ...] = ()
    multipart: bool = False
    body_ids: tuple[str, ...] = ()  # fields of the body naming resources (`x_id`, `x_ids`)

    @property
    def owned_params(self) -> tuple[str, ...]:
        """The path parameters that name a per-user resource (on routes with a caller).

        Unauthenticated routes (a public bot's chat) have no caller to own anything.
        """
        if not self.authenticated:
            return ()
        return tuple(p for p in self.params if ID_OF.get(p) is not None)

    @property
    def owned_body_ids(self) -> tuple[str, ...]:
        """The body fields that name a per-user resource (on routes with a caller)."""
        if not self.authenticated:
            return ()
        return tuple(f for f in self.body_ids if ID_OF.get(f.removesuffix("s")) is not None)

    def body_with(self, ids: dict[str, str], field: str) -> dict[str, Any]:
        """The valid body with `field` naming the resource of `ids` (a list for `_ids`)."""
        kind = field.removesuffix("s")
        return {
            **BODY_OF[self.body_model or ""],
            field: [ids[kind]] if field != kind else ids[kind],
        }

    def url(self, ids: dict[str, str]) -> str:
        """The path with its parameters filled in."""
        return PATH_PARAM.sub(lambda m: ids[m.group(1)], self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Every HTTP method and WebSocket of the app's route table."""
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute | APIWebSocketRoute):
            continue  # the OpenAPI document and its viewers: public, no ids
        dependant = route.dependant
        calls = list(_calls(dependant))
        body = dependant.body_params[0].field_info.annotation if dependant.body_params else None
        common = {
            "path": str(context.path),
            "params": tuple(PATH_PARAM.findall(str(context.path))),
            "body_model": getattr(body, "__name__", None) if body is not None else None,
            "authenticated": get_principal in calls,
            "admin_only": any("admin" in getattr(c, "__name__", "") for c in calls),
            "acts_as": any(q.name == "user_id" for q in dependant.query_params),
            "body_ids": tuple(
                name
                for name in getattr(body, "model_fields", {})
                if name != "user_id" and name.endswith(("_id", "_ids"))
            ),
            "required_query": tuple(
                q.alias for q in dependant.query_params if q.field_info.is_required()
            ),
            "multipart": "multipart/form-data"
            in ((getattr(route, "openapi_extra", None) or {}).get("requestBody") or {}).get(
                "content", {}
            ),
        }
        if isinstance(route, APIWebSocketRoute):
            found.append(Endpoint(method="WS", **common))
            continue
        for method in sorted((context.methods or set()) - {"HEAD"}):
            found.append(Endpoint(method=method, **common))
    return found


def ids_of(owner: Owned) -> dict[str, str]:
    """Every path parameter filled with `owner`'s resources."""
    return {name: make(owner) for name, make in ID_OF.items() if make is not None} | FIXED


async def call(
    client: httpx.AsyncClient,
    endpoint: Endpoint,
    ids: dict[str, str],
    headers: dict[str, str],
    params: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> httpx.Response:
    """One request to `endpoint` with a valid body (or `body`) and query."""
    query = {name: QUERY_OF[name] for name in endpoint.required_query} | (params or {})
    if endpoint.multipart:
        return await client.request(
            endpoint.method, endpoint.url(ids), files=UPLOAD, params=query, headers=headers
        )
    body = body if body is not None else BODY_OF.get(endpoint.body_model or "")
    return await client.request(
        endpoint.method,
        endpoint.url(ids),
        json=body if endpoint.body_model else None,
        params=query,
        headers=headers,
    )


async def snapshot(client: httpx.AsyncClient, owner: Owned) -> dict[str, Any]:
    """What an attack must leave as it was: the owner's resources, as the owner sees them."""
    h = owner.user.headers
    conv = (await client.get(f"/api/v1/conversations/{owner.conversation_id}", headers=h)).json()
    faq = (await client.get(f"/api/v1/faqs/{owner.faq_id}", headers=h)).json()
    hook = (await client.get(f"/api/v1/webhooks/{owner.webhook_id}", headers=h)).json()
    doc = await client.get(f"/api/v1/documents/{owner.document_id}", headers=h)
    me = await client.get("/api/v1/users/me", headers=owner.key_headers)
    bot = (await client.get(f"/api/v1/bots/{owner.bot_id}", headers=h)).json()
    category = (await client.get(f"/api/v1/faqs/categories/{owner.category_id}", headers=h)).json()
    return {
        "conversation": [
            conv.get("title"),
            conv.get("archived"),
            [(m["id"], m["status"], m["content"]) for m in conv.get("messages", [])],
        ],
        "faq": [faq.get("question"), faq.get("answer"), faq.get("status")],
        "webhook": [hook.get("url"), hook.get("active"), hook.get("events")],
        "document": doc.status_code,
        "api_key": me.status_code,
        "bot": [bot.get("name"), bot.get("version")],
        "category": [category.get("name")],
        "faq_counts": [faq.get("helpful_count"), faq.get("not_helpful_count")],
    }


_worlds: dict[int, tuple[Owned, Owned]] = {}


@pytest.fixture
async def world(ctx: AppCtx, client: httpx.AsyncClient, users: UserFactory) -> tuple[Owned, Owned]:
    """A victim and an attacker (both plain users), each owning one of everything.

    Made once per app: every test here checks that the victim's resources are left as
    they were, so they can share it.
    """
    key = id(ctx.app)
    if key not in _worlds:
        _worlds[key] = (await make_owned(client, users), await make_owned(client, users))
    return _worlds[key]


def test_every_route_is_understood(ctx: AppCtx) -> None:
    """A route the tables cannot fill in must fail here, not be skipped by the matrix."""
    found = endpoints(ctx.app)
    assert len([e for e in found if e.authenticated]) >= 40
    assert [e for e in found if e.method == "WS"], "the WebSocket routes are in the table"
    unknown_params = {p for e in found for p in e.params if p not in ID_OF}
    assert not unknown_params, f"add these path parameters to ID_OF: {unknown_params}"
    unknown_bodies = {e.body_model for e in found if e.body_model and e.body_model not in BODY_OF}
    assert not unknown_bodies, f"add a valid body for these models to BODY_OF: {unknown_bodies}"
    unknown_body_ids = {f for e in found for f in e.body_ids if f.removesuffix("s") not in ID_OF}
    assert not unknown_body_ids, f"add these body id fields to ID_OF: {unknown_body_ids}"
    unknown_query = {q for e in found for q in e.required_query if q not in QUERY_OF}
    assert not unknown_query, f"add these required query parameters to QUERY_OF: {unknown_query}"


async def test_another_users_ids_are_not_found(
    ctx: AppCtx, client: httpx.AsyncClient, world: tuple[Owned, Owned]
) -> None:
    """Each route with an id, each credential of the attacker: 404 (admin-only: 403)."""
    victim, attacker = world
    before = await snapshot(client, victim)
    theirs, mine = ids_of(victim), ids_of(attacker)
    wrong: list[str] = []
    checked = 0
    for endpoint in endpoints(ctx.app):
        if endpoint.method == "WS":
            continue
        for label, headers in (("token", attacker.user.headers), ("key", attacker.key_headers)):
            if endpoint.acts_as:  # naming the victim is a service key's privilege only
                r = await call(client, endpoint, theirs, headers, {"user_id": victim.user.id})
                checked += 1
                if r.status_code != 403:
                    wrong.append(f"{endpoint} {label} ?user_id=victim: {r.status_code}")
            for (
                field
            ) in endpoint.owned_body_ids:  # the attacker's own path, the victim's id in the body
                body = endpoint.body_with(theirs, field)
                r = await call(client, endpoint, mine, headers, body=body)
                checked += 1
                if r.status_code != 404:
                    wrong.append(f"{endpoint} {label} body {body}: {r.status_code} {r.text[:120]}")
        if not endpoint.owned_params:
            continue
        expected = 403 if endpoint.admin_only or ADMIN_PARAMS & set(endpoint.params) else 404
        # All ids the victim's, then one at a time among the attacker's own.
        variants = [theirs] + [
            {**mine, p: theirs[p]} for p in endpoint.owned_params if len(endpoint.owned_params) > 1
        ]
        for label, headers in (("token", attacker.user.headers), ("key", attacker.key_headers)):
            for ids in variants:
                r = await call(client, endpoint, ids, headers)
                checked += 1
                if r.status_code != expected:
                    wrong.append(f"{endpoint} {label} {ids}: {r.status_code} {r.text[:120]}")
    assert checked > 100
    assert not wrong, "\n".join(wrong)
    assert await snapshot(client, victim) == before
    r = await client.get("/api/v1/users/me", headers=attacker.user.headers)
    assert r.status_code == 200  # nothing above erased the attacker either


async def test_service_keys_act_on_any_id_but_a_named_user_must_own_it(
    ctx: AppCtx, client: httpx.AsyncClient, world: tuple[Owned, Owned], admin_key: str
) -> None:
    """Service keys: GET any resource by id; with `user_id` of someone else it is a 404."""
    victim, other = world
    headers = {"Authorization": f"Bearer {admin_key}"}
    theirs = ids_of(victim)
    wrong: list[str] = []
    for endpoint in endpoints(ctx.app):
        if endpoint.method == "WS" or not endpoint.owned_params:
            continue
        if endpoint.method == "GET":
            r = await call(client, endpoint, theirs, headers)
            if r.status_code != 200:
                wrong.append(f"{endpoint}: {r.status_code} {r.text[:120]}")
        if endpoint.acts_as:
            r = await call(client, endpoint, theirs, headers, {"user_id": other.user.id})
            if r.status_code != 404:
                wrong.append(f"{endpoint} ?user_id=other: {r.status_code} {r.text[:120]}")
    assert not wrong, "\n".join(wrong)


async def test_bad_credentials_are_401_everywhere(
    ctx: AppCtx, client: httpx.AsyncClient, users: UserFactory, world: tuple[Owned, Owned]
) -> None:
    """Every authenticated route refuses each bad credential (and none at all) with 401."""
    victim, _ = world
    creds = await bad_credentials(ctx, client, users, victim.user)
    ids = ids_of(victim)
    wrong: list[str] = []
    authenticated = [e for e in endpoints(ctx.app) if e.authenticated and e.method != "WS"]
    for endpoint in authenticated:
        attempts = [("none", {})] + [
            (name, {"Authorization": f"Bearer {value}"}) for name, value in creds.items()
        ]
        attempts += [
            (f"x-api-key {name}", {"X-API-Key": creds[name]})
            for name in ("unknown_api_key", "revoked_api_key")
        ]
        for name, headers in attempts:
            r = await call(client, endpoint, ids, headers)
            if r.status_code != 401:
                wrong.append(f"{endpoint} {name}: {r.status_code} {r.text[:120]}")
    assert not wrong, "\n".join(wrong)


# -- WebSockets -----------------------------------------------------------------------------


async def _close_code(ws: websockets.ClientConnection) -> int | None:
    try:
        for _ in range(10):
            await asyncio.wait_for(ws.recv(), 10)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    return None


async def test_websockets_refuse_bad_credentials(
    ctx: AppCtx,
    live: str,
    client: httpx.AsyncClient,
    users: UserFactory,
    world: tuple[Owned, Owned],
) -> None:
    """In the URL: the handshake is refused; in the first frame: closed with 4401."""
    victim, _ = world
    creds = await bad_credentials(ctx, client, users, victim.user)
    wrong: list[str] = []
    sockets = [e for e in endpoints(ctx.app) if e.method == "WS"]
    for endpoint in sockets:
        url = live + endpoint.url(ids_of(victim))
        for name, value in creds.items():
            try:
                async with websockets.connect(f"{url}?token={value}") as ws:
                    wrong.append(f"{endpoint} ?token {name}: accepted ({await _close_code(ws)})")
            except websockets.InvalidStatus as refused:
                if refused.response.status_code != 403:
                    wrong.append(f"{endpoint} ?token {name}: {refused.response.status_code}")
            async with websockets.connect(url) as ws:
                await ws.send(json.dumps({"type": "auth", "token": value}))
                code = await _close_code(ws)
                if code != 4401:
                    wrong.append(f"{endpoint} auth frame {name}: closed with {code}")
    assert not wrong, "\n".join(wrong)


async def test_websocket_frames_naming_another_users_ids_are_not_found(
    ctx: AppCtx, live: str, client: httpx.AsyncClient, world: tuple[Owned, Owned]
) -> None:
    """On every WebSocket route, with a token and with a key, every frame is owner-checked."""
    victim, attacker = world
    before = await snapshot(client, victim)
    wrong: list[str] = []
    for endpoint in (e for e in endpoints(ctx.app) if e.method == "WS"):
        for label, credential in (("token", attacker.user.access_token), ("key", attacker.api_key)):
            if endpoint.owned_params:  # connecting as the victim: forbidden
                async with websockets.connect(live + endpoint.url(ids_of(victim))) as ws:
                    await ws.send(json.dumps({"type": "auth", "token": credential}))
                    code = await _close_code(ws)
                    if code != 4403:
                        wrong.append(f"{endpoint} {label} as the victim: closed with {code}")
            url = f"{live}{endpoint.url(ids_of(attacker))}?token={credential}"
            async with websockets.connect(url) as ws:
                for make in WS_FRAMES:
                    frame = make(victim, attacker)
                    await ws.send(json.dumps(frame))
                    answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if answer.get("type") != "error" or answer["data"]["code"] != "not_found":
                        wrong.append(f"{endpoint} {label} {frame}: {answer}")
    assert not wrong, "\n".join(wrong)
    assert await snapshot(client, victim) == before
