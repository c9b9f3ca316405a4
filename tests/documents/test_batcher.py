"""The embedding batcher: concurrent callers share model calls and each gets its own vectors."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from botgpt.documents.batcher import EmbeddingBatcher
from botgpt.retrieval.embedders import EmbeddingError, HashEmbedder, Vectors


class SlowCounting(HashEmbedder):
    """HashEmbedder that records each call's texts, takes a while, and can refuse a text."""

    def __init__(self, delay: float = 0.05, poison: str = "") -> None:
        super().__init__(dimension=32)
        self.calls: list[list[str]] = []
        self.delay = delay
        self.poison = poison

    async def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(list(texts))
        await asyncio.sleep(self.delay)
        if self.poison and self.poison in texts:
            raise EmbeddingError("refused")
        return self.embed_sync(texts)


def texts_of(n: int) -> list[str]:
    return [f"document {n} chunk {i} words{n} more{i}" for i in range(1 + n % 3)]


async def test_concurrent_callers_share_calls_and_get_exactly_their_vectors() -> None:
    inner = SlowCounting()
    batcher = EmbeddingBatcher(inner, max_texts=64)
    requests = [texts_of(n) for n in range(20)]
    results = await asyncio.gather(*(batcher.embed(texts) for texts in requests))
    # Everything that arrived before the batcher got to run goes in one call.
    assert len(inner.calls) == 1 and batcher.calls == 1
    assert inner.calls[0] == [text for texts in requests for text in texts]
    for texts, vectors in zip(requests, results, strict=True):
        assert vectors.shape == (len(texts), 32)
        np.testing.assert_allclose(vectors, inner.embed_sync(texts))


async def test_calls_hold_at_most_max_texts_but_never_split_a_caller() -> None:
    inner = SlowCounting()
    batcher = EmbeddingBatcher(inner, max_texts=5)
    big = [f"big {i}" for i in range(7)]  # more than max_texts alone: one call of its own
    results = await asyncio.gather(
        batcher.embed(["first"]), batcher.embed(big), *(batcher.embed([f"t{i}"]) for i in range(8))
    )
    assert ["first"] in inner.calls and big in inner.calls
    assert all(len(call) <= 5 for call in inner.calls if call != big)
    np.testing.assert_allclose(results[1], inner.embed_sync(big))
    assert sum(len(call) for call in inner.calls) == 1 + 7 + 8  # each text embedded once


async def test_texts_arriving_during_a_call_go_together_in_the_next() -> None:
    inner = SlowCounting(delay=0.1)
    batcher = EmbeddingBatcher(inner)
    first = asyncio.create_task(batcher.embed(["first"]))
    await asyncio.sleep(0.03)  # the first call is running
    later = [asyncio.create_task(batcher.embed(texts_of(n))) for n in range(5)]
    await asyncio.gather(first, *later)
    assert inner.calls == [["first"], [text for n in range(5) for text in texts_of(n)]]


async def test_a_failure_stays_with_its_caller() -> None:
    inner = SlowCounting(poison="bad text")
    batcher = EmbeddingBatcher(inner)
    results = await asyncio.gather(
        batcher.embed(["warm"]),
        batcher.embed(["good one"]),
        batcher.embed(["bad text", "other"]),
        batcher.embed(["good two"]),
        return_exceptions=True,
    )
    assert isinstance(results[2], EmbeddingError)
    for index, texts in ((1, ["good one"]), (3, ["good two"])):
        vectors = results[index]
        assert isinstance(vectors, np.ndarray)
        np.testing.assert_allclose(vectors, inner.embed_sync(texts))


async def test_a_cancelled_caller_is_skipped_and_the_others_still_get_theirs() -> None:
    inner = SlowCounting(delay=0.2)
    batcher = EmbeddingBatcher(inner)
    first = asyncio.create_task(batcher.embed(["first"]))
    await asyncio.sleep(0.05)  # the first call is running; these two wait for the next
    gone = asyncio.create_task(batcher.embed(["gone away"]))
    kept = asyncio.create_task(batcher.embed(["kept"]))
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    np.testing.assert_allclose(await kept, inner.embed_sync(["kept"]))
    await first
    assert inner.calls == [["first"], ["kept"]]


async def test_nothing_to_embed_makes_no_call() -> None:
    inner = SlowCounting()
    vectors = await EmbeddingBatcher(inner).embed([])
    assert vectors.shape == (0, 32) and inner.calls == []
