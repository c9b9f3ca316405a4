"""Embedders: MiniLM ONNX vs the reference model, the OpenAI-compatible client, the test double."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from botgpt.retrieval.embedders import (
    EmbeddingError,
    HashEmbedder,
    MiniLMOnnxEmbedder,
    OpenAICompatEmbedder,
)

REFERENCE = json.loads((Path(__file__).parent / "minilm_reference.json").read_text())


@pytest.fixture(scope="module")
def minilm() -> MiniLMOnnxEmbedder:
    return MiniLMOnnxEmbedder()


async def test_minilm_matches_the_reference_model(minilm: MiniLMOnnxEmbedder) -> None:
    """Vectors agree with sentence-transformers' fp32 all-MiniLM-L6-v2 (stored in the JSON)."""
    vectors = await minilm.embed(REFERENCE["sentences"])
    reference = np.asarray(REFERENCE["embeddings"], dtype=np.float32)
    assert vectors.shape == (len(REFERENCE["sentences"]), 384)
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.min() > 0.99, cosines


async def test_minilm_semantic_sanity_and_normalisation(minilm: MiniLMOnnxEmbedder) -> None:
    vectors = await minilm.embed(
        ["A man is eating food.", "A man is eating a piece of bread.", "A monkey plays drums."]
    )
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


async def test_minilm_order_and_batching_do_not_change_vectors(minilm: MiniLMOnnxEmbedder) -> None:
    texts = [f"sentence {i} " + "word " * (i * 7 % 50) for i in range(20)]
    together = await minilm.embed(texts)
    alone = np.stack([await minilm.embed_query(t) for t in texts[:3]])
    assert np.allclose(together[:3], alone, atol=1e-4)
    assert (await minilm.embed([])).shape == (0, 384)


async def test_minilm_truncates_long_input(minilm: MiniLMOnnxEmbedder) -> None:
    long_text = "retrieval " * 2000
    assert minilm.count_tokens(long_text) >= 2000
    vector = await minilm.embed_query(long_text)
    assert vector.shape == (384,)


async def test_minilm_does_not_block_the_event_loop(minilm: MiniLMOnnxEmbedder) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await minilm.embed(["a fairly long sentence to embed " * 20] * 32)
    task.cancel()
    assert ticks > 5


async def test_hash_embedder_is_deterministic_and_similarity_aware() -> None:
    embedder = HashEmbedder(dimension=64)
    a, b, c = await embedder.embed(["red apple pie", "red apple tart", "quantum physics"])
    again = (await embedder.embed(["red apple pie"]))[0]
    assert np.array_equal(a, again)
    assert a @ b > a @ c
    assert np.isclose(np.linalg.norm(a), 1.0)


def _openai_handler(calls: list[dict[str, Any]], dimension: int = 4, fail: list[int] | None = None):  # type: ignore[no-untyped-def]
    failures = list(fail or [])

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        calls.append({"body": body, "auth": request.headers.get("authorization")})
        if failures:
            return httpx.Response(failures.pop(0), json={"error": {"message": "nope"}})
        data = [
            {"index": i, "embedding": [float(len(text)), 1.0] + [0.0] * (dimension - 2)}
            for i, text in enumerate(body["input"])
        ]
        data.reverse()  # the client must order by "index"
        return httpx.Response(200, json={"data": data, "model": body["model"]})

    return handler


async def test_openai_compat_batches_and_orders() -> None:
    calls: list[dict[str, Any]] = []
    client = httpx.AsyncClient(transport=httpx.MockTransport(_openai_handler(calls)))
    embedder = OpenAICompatEmbedder(
        "http://llm.local/v1/", "sk-test", "text-embed", 4, batch_size=2, client=client
    )
    vectors = await embedder.embed(["a", "bbb", "cc"])
    assert vectors.shape == (3, 4)
    assert len(calls) == 2 and calls[0]["body"]["input"] == ["a", "bbb"]
    assert calls[0]["auth"] == "Bearer sk-test"
    assert calls[0]["body"]["model"] == "text-embed"
    assert vectors[1][0] > vectors[0][0]  # order preserved despite reversed response
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    await client.aclose()


async def test_openai_compat_retries_transient_errors() -> None:
    calls: list[dict[str, Any]] = []
    transport = httpx.MockTransport(_openai_handler(calls, fail=[503]))
    async with httpx.AsyncClient(transport=transport) as client:
        embedder = OpenAICompatEmbedder("http://x/v1", None, "m", 4, client=client)
        embedder_vectors = await embedder.embed(["hello"])
    assert embedder_vectors.shape == (1, 4) and len(calls) == 2
    assert calls[0]["auth"] is None


@pytest.mark.parametrize("status", [400, 401, 404])
async def test_openai_compat_maps_errors(status: int) -> None:
    transport = httpx.MockTransport(_openai_handler([], fail=[status]))
    async with httpx.AsyncClient(transport=transport) as client:
        embedder = OpenAICompatEmbedder("http://x/v1", "k", "m", 4, client=client)
        with pytest.raises(EmbeddingError) as info:
            await embedder.embed(["hello"])
    assert info.value.status_code == status


async def test_openai_compat_rejects_wrong_dimension_and_garbage() -> None:
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(_openai_handler([], dimension=8))
    ) as client:
        with pytest.raises(EmbeddingError, match="8-d"):
            await OpenAICompatEmbedder("http://x", "k", "m", 4, client=client).embed(["a"])

    def garbage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>proxy error</html>")

    async with httpx.AsyncClient(transport=httpx.MockTransport(garbage)) as client:
        with pytest.raises(EmbeddingError, match="malformed"):
            await OpenAICompatEmbedder("http://x", "k", "m", 4, client=client).embed(["a"])


async def test_openai_compat_network_failure() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    async with httpx.AsyncClient(transport=httpx.MockTransport(down)) as client:
        embedder = OpenAICompatEmbedder("http://x", "k", "m", 4, client=client, max_retries=0)
        with pytest.raises(EmbeddingError, match="failed"):
            await embedder.embed(["a"])
