"""The rate limiter itself: counting, Retry-After, shared Redis counters, failing open."""

from __future__ import annotations

import os
import socket
import uuid

import pytest
from limits.aio.storage import MemoryStorage
from pydantic import ValidationError

from botgpt.config import Settings
from botgpt.exceptions import RateLimited
from botgpt.ratelimit import RateLimiter, make_storage

REDIS_URL = os.environ.get("BOTGPT_TEST_REDIS_URL", "")


async def test_counts_per_key_and_says_when_to_retry() -> None:
    limiter = RateLimiter("chat", "2/minute;5/hour", MemoryStorage())
    await limiter.hit("alice")
    await limiter.hit("alice")
    with pytest.raises(RateLimited) as raised:
        await limiter.hit("alice")
    assert 1 <= (raised.value.retry_after or 0) <= 60
    assert raised.value.details["limit"] == "2 per minute"
    await limiter.hit("bob")  # keys are independent


async def test_empty_limits_turn_the_limiter_off() -> None:
    limiter = RateLimiter("chat", "", MemoryStorage())
    assert not limiter.enabled
    for _ in range(100):
        await limiter.hit("alice")


@pytest.mark.skipif(not REDIS_URL, reason="BOTGPT_TEST_REDIS_URL is not set")
async def test_processes_share_counters_through_redis() -> None:
    scope = f"test-{uuid.uuid4().hex}"  # a fresh namespace in the shared Redis
    first = RateLimiter(scope, "3/minute", make_storage(REDIS_URL))
    second = RateLimiter(scope, "3/minute", make_storage(REDIS_URL))  # another "process"
    await first.hit("alice")
    await second.hit("alice")
    await first.hit("alice")
    with pytest.raises(RateLimited):
        await second.hit("alice")


async def test_an_unreachable_redis_lets_requests_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    limiter = RateLimiter("chat", "1/minute", make_storage(f"redis://127.0.0.1:{port}/0"))
    await limiter.hit("alice")
    await limiter.hit("alice")
    assert "rate limit storage unavailable" in caplog.text


def test_settings_reject_malformed_limits() -> None:
    with pytest.raises(ValidationError, match="rate limit list"):
        Settings(_env_file=None, rate_limit_chat="sixty a minute")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="BOTGPT_REDIS_URL"):
        Settings(_env_file=None, redis_url="localhost:6379")  # type: ignore[call-arg]
