"""POST /v1/embeddings with the official `openai` package: the offline MiniLM model."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import numpy as np
import openai
import pytest

from botgpt.retrieval.embedders import MINILM_MODEL_NAME
from tests.conftest import AppCtx, AuthedUser


@pytest.fixture
async def oai(
    ctx: AppCtx, client: httpx.AsyncClient, user: AuthedUser
) -> AsyncIterator[openai.AsyncOpenAI]:
    r = await client.post("/api/v1/api-keys", json={"name": "sdk"}, headers=user.headers)
    transport = httpx.ASGITransport(app=ctx.app)
    sdk = openai.AsyncOpenAI(
        api_key=r.json()["key"],
        base_url="http://test/v1",
        http_client=httpx.AsyncClient(transport=transport),  # type: ignore[arg-type]
        max_retries=0,
    )
    yield sdk
    await sdk.close()


async def test_vectors_are_normalised_and_mean_something(oai: openai.AsyncOpenAI) -> None:
    texts = [
        "The cat sits on the mat.",
        "A cat is sitting on a rug.",
        "Quarterly revenue grew by eight percent.",
    ]
    # The SDK asks for base64 and decodes it: this checks that encoding end to end.
    result = await oai.embeddings.create(model=MINILM_MODEL_NAME, input=texts)
    vectors = np.array([d.embedding for d in result.data])
    assert vectors.shape == (3, 384)
    assert [d.index for d in result.data] == [0, 1, 2]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > unrelated + 0.3
    assert result.usage.prompt_tokens == result.usage.total_tokens > 10
    assert result.model == MINILM_MODEL_NAME


async def test_float_and_base64_give_the_same_vector(
    client: httpx.AsyncClient, oai: openai.AsyncOpenAI, user: AuthedUser
) -> None:
    r = await client.post(
        "/v1/embeddings",
        json={"model": "botgpt-embedding", "input": "hello world", "encoding_format": "float"},
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    as_floats = np.array(r.json()["data"][0]["embedding"])
    decoded = (await oai.embeddings.create(model=MINILM_MODEL_NAME, input="hello world")).data
    assert np.allclose(as_floats, np.array(decoded[0].embedding), atol=1e-6)


async def test_bad_requests_use_openai_errors(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        await oai.embeddings.create(model="text-embedding-nope", input="x")
    with pytest.raises(openai.BadRequestError, match="384"):
        await oai.embeddings.create(model=MINILM_MODEL_NAME, input="x", dimensions=1536)
    with pytest.raises(openai.BadRequestError):
        await oai.embeddings.create(model=MINILM_MODEL_NAME, input=[[1, 2, 3]])
    with pytest.raises(openai.BadRequestError):
        await oai.embeddings.create(model=MINILM_MODEL_NAME, input=["fine", "  "])


async def test_embeddings_need_credentials(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/embeddings", json={"model": MINILM_MODEL_NAME, "input": "x"})
    assert r.status_code == 401
    assert set(r.json()["error"]) >= {"message", "type", "code"}  # OpenAI's envelope
