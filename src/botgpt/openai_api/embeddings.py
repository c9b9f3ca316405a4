"""POST /v1/embeddings: the configured embedding model behind OpenAI's embeddings API.

The model is the one documents are indexed with (all-MiniLM-L6-v2 offline by default), so
an OpenAI client can embed text the same way BOT GPT does. Inputs longer than the model's
window are truncated by the model, as sentence-transformers does; token arrays are refused.
"""

from __future__ import annotations

import base64
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from botgpt.documents.embedding import LazyEmbedder
from botgpt.openai_api.service import OpenAIError
from botgpt.retrieval.embedders import EmbeddingError
from botgpt.text import Text

MAX_INPUTS = 2048
MAX_INPUT_CHARS = 100_000
# Names that always mean "the embedding model this server runs".
EMBEDDING_ALIASES = ("botgpt-embedding",)


class EmbeddingCreate(BaseModel):
    """An embeddings request; unknown fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: Text = Field(min_length=1, max_length=256)
    input: Text | list[Text] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: Text | None = Field(default=None, max_length=256)


class Embedding(BaseModel):
    """One input's vector (a list of floats, or base64 of little-endian float32)."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    """Tokens read."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    """The vectors, in input order."""

    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


def _texts(body: EmbeddingCreate) -> list[str]:
    raw = body.input
    texts = [raw] if isinstance(raw, str) else raw
    if not texts or not all(isinstance(t, str) for t in texts):
        raise OpenAIError(
            400, "'input' must be a non-empty string or list of strings.", param="input"
        )
    if len(texts) > MAX_INPUTS:
        raise OpenAIError(400, f"At most {MAX_INPUTS} inputs per request.", param="input")
    strings = [str(t) for t in texts]
    for i, text in enumerate(strings):
        if not text.strip() or len(text) > MAX_INPUT_CHARS:
            raise OpenAIError(
                400,
                f"input[{i}] must be non-empty text of at most {MAX_INPUT_CHARS} characters.",
                param=f"input[{i}]",
            )
    return strings


async def create_embeddings(embedder: LazyEmbedder, body: EmbeddingCreate) -> EmbeddingList:
    """Embed the request's inputs with the server's embedding model."""
    if body.model != embedder.name and body.model not in EMBEDDING_ALIASES:
        raise OpenAIError(
            404,
            f"The model '{body.model}' does not exist; this server embeds with '{embedder.name}'.",
            param="model",
            code="model_not_found",
        )
    if body.dimensions is not None and body.dimensions != embedder.dimension:
        raise OpenAIError(
            400,
            f"'{embedder.name}' gives {embedder.dimension}-dimensional vectors only.",
            param="dimensions",
        )
    texts = _texts(body)
    try:
        vectors = await embedder.embed(texts)
    except EmbeddingError as exc:
        raise OpenAIError(503, "The embedding model is unavailable right now.") from exc
    count = await embedder.token_counter()
    tokens = sum(count(t) for t in texts)
    data = [
        Embedding(index=i, embedding=_encode(vector, body.encoding_format))
        for i, vector in enumerate(vectors)
    ]
    return EmbeddingList(
        data=data,
        model=embedder.name,
        usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )


def _encode(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return [float(x) for x in vector]
