"""Erasing an owner drops their cached answers from Redis too (the keys are hashes, so the
cache keeps a set of each owner's keys), and leaves other owners' answers alone."""

from __future__ import annotations

import os
import uuid
from typing import cast

import pytest

from botgpt.conversations.answer_cache import AnswerCache
from botgpt.sqlrunner import SqlRunner

REDIS_URL = os.environ.get("BOTGPT_TEST_REDIS_URL", "")
pytestmark = pytest.mark.skipif(not REDIS_URL, reason="BOTGPT_TEST_REDIS_URL is not set")


async def test_forget_owner_drops_only_that_owners_answers() -> None:
    # Redis mode never touches the database runner.
    cache = AnswerCache(cast(SqlRunner, None), REDIS_URL, ttl_seconds=60)
    erased, kept = str(uuid.uuid4()), str(uuid.uuid4())
    keys = [uuid.uuid4().hex for _ in range(3)]
    try:
        await cache.put(keys[0], erased, "first answer", None)
        await cache.put(keys[1], erased, "second answer", [{"n": 1}])
        await cache.put(keys[2], kept, "someone else's", None)
        assert (await cache.get(keys[1])) is not None

        await cache.forget_owner(erased)

        assert await cache.get(keys[0]) is None
        assert await cache.get(keys[1]) is None
        other = await cache.get(keys[2])
        assert other is not None and other.answer == "someone else's"
        assert not await cache._redis.client.exists(f"botgpt:answer-owner:{erased}")  # type: ignore[union-attr]
    finally:
        await cache.forget_owner(kept)
        await cache.aclose()
