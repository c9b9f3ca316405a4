"""Rate limits: chat turns per acting user, sign-in attempts per client address."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from limits.aio.storage import MemoryStorage

from botgpt.observability.metrics import REGISTRY
from botgpt.ratelimit import RateLimiter
from tests.conftest import AppCtx, AuthedUser, UserFactory

SetLimits = Callable[..., None]


@pytest.fixture
def set_limits(ctx: AppCtx) -> Iterator[SetLimits]:
    """Swap the app's limiters for fresh ones with the given limits; restore them after."""
    services = ctx.app.state.container
    chat = services.chat
    saved = services.limits.chat, services.limits.auth, chat.admission.limiter

    def apply(chat_limits: str = "", auth_limits: str = "") -> None:
        storage = MemoryStorage()
        services.limits.chat = chat.admission.limiter = RateLimiter("chat", chat_limits, storage)
        services.limits.auth = RateLimiter("auth", auth_limits, storage)

    yield apply
    services.limits.chat, services.limits.auth, chat.admission.limiter = saved


def assert_limited(r: httpx.Response, limit: str) -> None:
    assert r.status_code == 429, r.text
    assert int(r.headers["retry-after"]) >= 1
    error = r.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["details"]["limit"] == limit


async def test_chat_turns_are_limited_per_user_and_a_refused_turn_stores_nothing(
    client: httpx.AsyncClient, users: UserFactory, set_limits: SetLimits
) -> None:
    alice, bob = await users.create(), await users.create()
    set_limits(chat_limits="2/minute")
    r = await client.post(
        "/api/v1/conversations", json={"first_message": "one"}, headers=alice.headers
    )
    assert r.status_code == 201
    cid = r.json()["conversation_id"]
    url = f"/api/v1/conversations/{cid}/messages"
    r = await client.post(url, json={"content": "two"}, headers=alice.headers)
    assert r.status_code == 201
    refused = REGISTRY.get_sample_value("botgpt_rate_limited_total", {"scope": "chat"}) or 0
    assert_limited(
        await client.post(url, json={"content": "three"}, headers=alice.headers), "2 per minute"
    )
    assert REGISTRY.get_sample_value("botgpt_rate_limited_total", {"scope": "chat"}) == refused + 1
    history = (await client.get(f"/api/v1/conversations/{cid}", headers=alice.headers)).json()
    assert [m["content"] for m in history["messages"] if m["role"] == "user"] == ["one", "two"]
    # Another user has a budget of their own.
    r = await client.post(
        "/api/v1/conversations", json={"first_message": "hi"}, headers=bob.headers
    )
    assert r.status_code == 201


async def test_a_service_key_is_limited_per_user_it_acts_for(
    client: httpx.AsyncClient, admin_key: str, set_limits: SetLimits
) -> None:
    set_limits(chat_limits="1/minute")
    headers = {"Authorization": f"Bearer {admin_key}"}

    async def create(user_id: str) -> httpx.Response:
        return await client.post(
            "/api/v1/conversations",
            json={"first_message": "hi", "user_id": user_id},
            headers=headers,
        )

    assert (await create("customer-1")).status_code == 201
    assert (await create("customer-2")).status_code == 201
    assert_limited(await create("customer-1"), "1 per minute")


async def test_sign_in_attempts_are_limited_per_address(
    client: httpx.AsyncClient, user: AuthedUser, set_limits: SetLimits
) -> None:
    set_limits(auth_limits="3/minute")
    wrong = {"email": user.email, "password": "not the password"}
    for _ in range(3):
        assert (await client.post("/api/v1/auth/login", json=wrong)).status_code == 401
    right = {"email": user.email, "password": user.password}
    assert_limited(await client.post("/api/v1/auth/login", json=right), "3 per minute")
    r = await client.post(
        "/api/v1/auth/register", json={"email": "new@example.com", "password": "long enough pw"}
    )
    assert r.status_code == 429
    # Signed-in requests are not sign-in attempts.
    assert (await client.get("/api/v1/users/me", headers=user.headers)).status_code == 200


async def test_openai_compatible_completions_share_the_chat_limit(
    client: httpx.AsyncClient, user: AuthedUser, set_limits: SetLimits
) -> None:
    set_limits(chat_limits="1/minute")
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
    r = await client.post("/v1/chat/completions", json=body, headers=user.headers)
    assert r.status_code == 200, r.text
    r = await client.post("/v1/chat/completions", json=body, headers=user.headers)
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == "rate_limit_exceeded"  # the OpenAI envelope


async def test_the_limit_is_documented(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "429" in spec["paths"]["/api/v1/conversations"]["post"]["responses"]
    assert "429" in spec["paths"]["/api/v1/auth/login"]["post"]["responses"]
