"""The chat turn: provider failures keep the user message, idempotency, concurrent sends."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from botgpt.llm.errors import (
    LLMError,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from botgpt.llm.fake import FakeProvider, FakeReply
from tests.conftest import AuthedUser, ConversationFactory


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ProviderTimeout("timed out"), 504, "provider_timeout"),
        (ProviderRateLimited("slow down", retry_after=0.01), 503, "provider_rate_limited"),
        (ProviderUnavailable("HTTP 500"), 503, "provider_unavailable"),
        (ProviderUnavailable("connection refused"), 503, "provider_unavailable"),
        (ProviderBadResponse("garbage"), 502, "provider_bad_response"),
    ],
)
async def test_provider_failure_keeps_user_message(
    client: httpx.AsyncClient,
    user: AuthedUser,
    conversations: ConversationFactory,
    fake: FakeProvider,
    error: LLMError,
    status: int,
    code: str,
) -> None:
    conv = await conversations.create(user)
    cid = conv["conversation_id"]
    # Retryable errors are tried 3 times; queue enough failures to exhaust the retries.
    fake.enqueue(*([error] * 3))
    r = await client.post(
        f"/api/v1/conversations/{cid}/messages",
        json={"content": "Still there?"},
        headers=user.headers,
    )
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code
    assert "Traceback" not in r.text
    assert err["details"]["conversation_id"] == cid
    r = await client.get(f"/api/v1/conversations/{cid}", headers=user.headers)
    messages = r.json()["messages"]
    assert [m["seq"] for m in messages] == [1, 2, 3, 4]
    assert messages[2]["content"] == "Still there?" and messages[2]["status"] == "complete"
    assert messages[3]["status"] == "failed" and messages[3]["error"]["code"] == code
    assert messages[3]["id"] == err["details"]["assistant_message_id"]


async def test_retry_after_is_honoured_then_succeeds(
    client: httpx.AsyncClient, user: AuthedUser, fake: FakeProvider
) -> None:
    fake.enqueue(
        ProviderRateLimited("429", retry_after=0.2), ProviderUnavailable("500"), "Recovered"
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    r = await client.post(
        "/api/v1/conversations", json={"first_message": "hi"}, headers=user.headers
    )
    assert r.status_code == 201, r.text
    assert r.json()["assistant_response"] == "Recovered"
    assert loop.time() - started >= 0.2  # waited as the provider asked
    assert len(fake.requests) == 3


async def test_failure_mid_stream_is_not_retried_and_keeps_partial(
    client: httpx.AsyncClient, user: AuthedUser, fake: FakeProvider
) -> None:
    fake.enqueue(
        FakeReply(
            text="Partial answer that breaks",
            error=ProviderUnavailable("dropped"),
            error_after_chunks=2,
        )
    )
    r = await client.post(
        "/api/v1/conversations", json={"first_message": "hi"}, headers=user.headers
    )
    assert r.status_code == 503
    assert len(fake.requests) == 1
    cid = r.json()["error"]["details"]["conversation_id"]
    r = await client.get(f"/api/v1/conversations/{cid}", headers=user.headers)
    failed = r.json()["messages"][1]
    assert failed["status"] == "failed" and failed["content"] == "Partial answer t"


async def test_idempotent_retry_returns_first_result(
    client: httpx.AsyncClient,
    user: AuthedUser,
    conversations: ConversationFactory,
    fake: FakeProvider,
) -> None:
    conv = await conversations.create(user)
    cid = conv["conversation_id"]
    h = {**user.headers, "Idempotency-Key": "retry-1"}
    fake.enqueue("first answer", "second answer")
    r1 = await client.post(
        f"/api/v1/conversations/{cid}/messages", json={"content": "Q"}, headers=h
    )
    r2 = await client.post(
        f"/api/v1/conversations/{cid}/messages", json={"content": "Q"}, headers=h
    )
    assert r1.status_code == r2.status_code == 201
    assert r1.json() == r2.json()
    assert r2.headers["Idempotent-Replayed"] == "true"
    r = await client.get(f"/api/v1/conversations/{cid}", headers=user.headers)
    assert r.json()["message_count"] == 4  # one turn, not two
    r3 = await client.post(
        f"/api/v1/conversations/{cid}/messages", json={"content": "Different"}, headers=h
    )
    assert r3.status_code == 422


async def test_idempotent_create_conversation(client: httpx.AsyncClient, user: AuthedUser) -> None:
    h = {**user.headers, "Idempotency-Key": "create-1"}
    r1 = await client.post("/api/v1/conversations", json={"first_message": "hi"}, headers=h)
    r2 = await client.post("/api/v1/conversations", json={"first_message": "hi"}, headers=h)
    assert r1.json()["conversation_id"] == r2.json()["conversation_id"]
    r = await client.get("/api/v1/conversations", headers=user.headers)
    assert r.json()["total"] == 1


async def test_concurrent_sends_keep_order_and_lose_nothing(
    client: httpx.AsyncClient,
    user: AuthedUser,
    conversations: ConversationFactory,
    fake: FakeProvider,
) -> None:
    conv = await conversations.create(user)
    cid = conv["conversation_id"]
    fake.default_delay = 0.01
    n = 12
    results = await asyncio.gather(
        *[
            client.post(
                f"/api/v1/conversations/{cid}/messages",
                json={"content": f"message {i}"},
                headers=user.headers,
            )
            for i in range(n)
        ]
    )
    assert all(r.status_code == 201 for r in results), [r.text for r in results]
    r = await client.get(f"/api/v1/conversations/{cid}", headers=user.headers)
    messages = r.json()["messages"]
    assert [m["seq"] for m in messages] == list(range(1, 2 * n + 3))
    sent = sorted(m["content"] for m in messages[2:] if m["role"] == "user")
    assert sent == sorted(f"message {i}" for i in range(n))
    for user_msg, reply in zip(messages[::2], messages[1::2], strict=True):
        assert reply["reply_to_id"] == user_msg["id"] and reply["status"] == "complete"
    assert r.json()["message_count"] == 2 * n + 2
