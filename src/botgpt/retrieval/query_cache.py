"""A cache of query embeddings: a repeated question is embedded once (seed 004).

Entries are keyed by the embedding model and the exact query text, kept in a bounded
in-process LRU, and, with Redis, shared by every process (float32 bytes with a TTL).
Concurrent requests for the same query wait for one embedding instead of computing it
twice. Redis being down only costs the sharing: the cache falls back to this process.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import numpy as np
from numpy.typing import NDArray
from redis.exceptions import RedisError

from botgpt.redis_channel import LazyRedis

log = logging.getLogger("botgpt.retrieval")

Vector = NDArray[np.float32]
_DTYPE = np.dtype("<f4")


class QueryEmbeddingCache:
    """Bounded LRU of query vectors, optionally backed by Redis."""

    def __init__(
        self, max_entries: int = 10_000, redis_url: str = "", ttl_seconds: int = 86_400
    ) -> None:
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._local: OrderedDict[str, Vector] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[Vector]] = {}
        self._redis = LazyRedis(redis_url) if redis_url else None
        self.hits = 0
        self.misses = 0

    async def get_or_compute(
        self, model: str, text: str, compute: Callable[[], Awaitable[Vector]]
    ) -> Vector:
        """The cached vector of `text` under `model`, computing (once) on a miss."""
        key = _key(model, text)
        vector = self._local.get(key)
        if vector is not None:
            self._local.move_to_end(key)
            self.hits += 1
            return vector
        pending = self._inflight.get(key)
        if pending is not None:
            self.hits += 1
            return await asyncio.shield(pending)
        future: asyncio.Future[Vector] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            vector = await self._shared(key)
            if vector is None:
                self.misses += 1
                vector = await compute()
                await self._share(key, vector)
            else:
                self.hits += 1
            self._remember(key, vector)
            future.set_result(vector)
            return vector
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so a future nobody awaited logs nothing
            raise
        finally:
            del self._inflight[key]

    def _remember(self, key: str, vector: Vector) -> None:
        self._local[key] = vector
        self._local.move_to_end(key)
        while len(self._local) > self.max_entries:
            self._local.popitem(last=False)

    async def _shared(self, key: str) -> Vector | None:
        if self._redis is None:
            return None
        try:
            raw = await self._redis.client.get(key)
        except (RedisError, OSError):
            log.warning("query embedding cache: Redis unreachable, using this process only")
            return None
        if not isinstance(raw, bytes) or not raw:
            return None
        return np.frombuffer(raw, dtype=_DTYPE).astype(np.float32)

    async def _share(self, key: str, vector: Vector) -> None:
        if self._redis is None:
            return
        try:
            await self._redis.client.set(
                key, np.asarray(vector, dtype=_DTYPE).tobytes(), ex=self.ttl_seconds
            )
        except (RedisError, OSError):
            log.warning("query embedding cache: Redis unreachable, vector not shared")

    async def aclose(self) -> None:
        """Close the Redis connections, if any."""
        if self._redis is not None:
            await self._redis.close_client()


def _key(model: str, text: str) -> str:
    digest = hashlib.sha256(f"{model}\x00{text}".encode()).hexdigest()
    return f"botgpt:qemb:{digest}"
