"""The embedder documents are indexed with, built lazily from settings, and the index's dimension.

The local MiniLM model loads on first use (not at start), so a server that never ingests
or searches never pays for it; an OpenAI-compatible embeddings API can replace it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from botgpt.config import Settings
from botgpt.documents.chunking import CountTokens, TokenOffsets, approx_token_count
from botgpt.retrieval.embedders import (
    MINILM_DIMENSION,
    MINILM_MODEL_NAME,
    Embedder,
    EmbeddingError,
    HashEmbedder,
    Vectors,
)
from botgpt.retrieval.query_cache import QueryEmbeddingCache

DEFAULT_OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"


class LazyEmbedder(Embedder):
    """One shared embedder, built on first use (model files are read only when needed)."""

    def __init__(
        self,
        factory: Callable[[], Embedder],
        name: str,
        dimension: int,
        query_cache: QueryEmbeddingCache | None = None,
    ) -> None:
        self._factory = factory
        self._inner: Embedder | None = None
        self._lock = asyncio.Lock()
        self.name = name
        self.dimension = dimension
        self.query_cache = query_cache

    async def get(self) -> Embedder:
        """The underlying embedder, created (in a thread) the first time."""
        if self._inner is None:
            async with self._lock:
                if self._inner is None:
                    inner = await asyncio.to_thread(self._factory)
                    if inner.dimension != self.dimension:
                        raise EmbeddingError(
                            f"embedder {inner.name} gives {inner.dimension}-d vectors, "
                            f"configured for {self.dimension}"
                        )
                    self._inner = inner
        return self._inner

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed passages with the underlying embedder."""
        return await (await self.get()).embed(texts)

    async def embed_query(self, text: str) -> NDArray[np.float32]:
        """Embed a search query with the underlying embedder (cached when configured)."""
        if self.query_cache is None:
            return await (await self.get()).embed_query(text)

        async def compute() -> NDArray[np.float32]:
            return await (await self.get()).embed_query(text)

        return await self.query_cache.get_or_compute(self.name, text, compute)

    async def token_counter(self) -> CountTokens:
        """The embedder's own token counter when it has one (MiniLM), else an estimate."""
        count = getattr(await self.get(), "count_tokens", None)
        return count if callable(count) else approx_token_count

    async def token_offsets(self) -> TokenOffsets | None:
        """The embedder's tokenizer offsets (MiniLM): lets the chunker tokenize a text once."""
        offsets = getattr(await self.get(), "token_offsets", None)
        return offsets if callable(offsets) else None

    async def aclose(self) -> None:
        """Close the underlying embedder if it was created."""
        if self._inner is not None:
            await self._inner.aclose()
        if self.query_cache is not None:
            await self.query_cache.aclose()


def build_embedder(settings: Settings) -> LazyEmbedder:
    """The embedder chosen by ``BOTGPT_EMBEDDING_*`` (local MiniLM, OpenAI-compatible, hash)."""
    provider = settings.embedding_provider
    cache = (
        QueryEmbeddingCache(settings.query_embedding_cache_size, settings.redis_url)
        if settings.query_embedding_cache_size
        else None
    )
    if provider == "openai":
        from botgpt.retrieval.embedders import OpenAICompatEmbedder

        model = settings.embedding_model or DEFAULT_OPENAI_EMBEDDING_MODEL
        key = settings.embedding_api_key
        dimension = settings.embedding_dimension

        def openai() -> Embedder:
            return OpenAICompatEmbedder(
                settings.embedding_base_url,
                key.get_secret_value() if key is not None else None,
                model,
                dimension,
                batch_size=max(settings.embedding_batch_size, 16),
                # text-embedding-3-* can shorten their vectors to the index's dimension.
                send_dimensions=model.startswith("text-embedding-3"),
            )

        return LazyEmbedder(openai, model, dimension, cache)
    if provider == "hash":
        dimension = settings.embedding_dimension
        return LazyEmbedder(lambda: HashEmbedder(dimension), "hash-test", dimension, cache)

    def minilm() -> Embedder:
        from botgpt.retrieval.embedders import MiniLMOnnxEmbedder

        return MiniLMOnnxEmbedder(
            threads=settings.embedding_threads or None, nice=settings.embedding_nice
        )

    return LazyEmbedder(minilm, MINILM_MODEL_NAME, MINILM_DIMENSION, cache)


async def index_dimension(conn: AsyncConnection) -> int | None:
    """The vector dimension the chunk index was created with (None if it cannot be read)."""
    if conn.dialect.name == "postgresql":
        sql = (
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass('chunks') AND attname = 'embedding'"
        )
    else:
        sql = "SELECT sql FROM sqlite_master WHERE name = 'chunks_vec'"
    found = (await conn.execute(text(sql))).scalar()
    if conn.dialect.name != "postgresql":
        from botgpt.retrieval.sqlite_store import dimension_from_schema

        return dimension_from_schema(str(found or ""))
    match = re.search(r"(?:vector\(|FLOAT\[)(\d+)", str(found or ""), re.IGNORECASE)
    return int(match.group(1)) if match else None
