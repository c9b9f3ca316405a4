"""The query embedding cache: one computation per repeated query, bounded, shared over Redis."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pytest

from botgpt.retrieval.query_cache import QueryEmbeddingCache


class Counting:
    """A stand-in model that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> np.ndarray:
        self.calls += 1
        await asyncio.sleep(0.01)
        return np.full(4, float(self.calls), dtype=np.float32)


async def test_repeated_and_concurrent_queries_are_embedded_once() -> None:
    cache = QueryEmbeddingCache(max_entries=2)
    model = Counting()
    first, *rest = await asyncio.gather(
        *(cache.get_or_compute("m", "what is the refund policy?", model) for _ in range(5))
    )
    assert model.calls == 1 and all(np.array_equal(first, r) for r in rest)
    # Another model or another text is another entry; the oldest falls out past the bound.
    await cache.get_or_compute("other-model", "what is the refund policy?", model)
    await cache.get_or_compute("m", "shipping?", model)
    assert model.calls == 3
    await cache.get_or_compute("m", "what is the refund policy?", model)
    assert model.calls == 4


async def test_a_failed_computation_is_not_cached() -> None:
    cache = QueryEmbeddingCache()

    async def broken() -> np.ndarray:
        raise RuntimeError("model down")

    with pytest.raises(RuntimeError):
        await cache.get_or_compute("m", "q", broken)
    model = Counting()
    assert (await cache.get_or_compute("m", "q", model))[0] == 1.0


@pytest.mark.skipif("BOTGPT_TEST_REDIS_URL" not in os.environ, reason="needs Redis")
async def test_processes_share_vectors_through_redis() -> None:
    url = os.environ["BOTGPT_TEST_REDIS_URL"]
    one, two = QueryEmbeddingCache(redis_url=url), QueryEmbeddingCache(redis_url=url)
    model = Counting()
    text = f"shared question {os.getpid()} {id(one)}"
    a = await one.get_or_compute("m", text, model)
    b = await two.get_or_compute("m", text, model)
    assert model.calls == 1 and np.array_equal(a, b)
    await one.aclose()
    await two.aclose()


async def test_redis_down_falls_back_to_this_process() -> None:
    cache = QueryEmbeddingCache(redis_url="redis://127.0.0.1:1/0")
    model = Counting()
    await cache.get_or_compute("m", "q", model)
    await cache.get_or_compute("m", "q", model)
    assert model.calls == 1
    await cache.aclose()
