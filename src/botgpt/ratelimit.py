"""Rate limits per user (chat turns) and per client address (sign-in), in memory or Redis.

Counting uses the sliding-window-counter strategy of the `limits` library: two counters per
key and window, so memory stays flat however busy a user is, and bursts at a window edge are
smoothed. With `BOTGPT_REDIS_URL` set the counters live in Redis and every process shares
them; without it each process counts on its own (the one-process default). If Redis cannot
be reached the request is let through and the failure logged: an outage of the limiter
must not become an outage of the chat.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from botgpt.exceptions import RateLimited
from botgpt.observability import metrics

log = logging.getLogger("botgpt.ratelimit")


def make_storage(redis_url: str) -> Storage:
    """Redis storage for a redis:// URL (redis-py client), else in-process memory."""
    if redis_url:
        return RedisStorage("async+" + redis_url, implementation="redispy", wrap_exceptions=True)
    return MemoryStorage()


class RateLimiter:
    """Checks one group of limits (e.g. "60/minute;1000/hour") for keys within a scope."""

    def __init__(self, scope: str, limits: str, storage: Storage) -> None:
        self.scope = scope
        self.items: list[RateLimitItem] = parse_many(limits) if limits else []
        self._strategy = SlidingWindowCounterRateLimiter(storage)

    @property
    def enabled(self) -> bool:
        """Whether any limit is configured."""
        return bool(self.items)

    async def hit(self, key: str) -> None:
        """Count one request for `key`; `RateLimited` (with Retry-After) once a limit is spent."""
        for item in self.items:
            try:
                allowed = await self._strategy.hit(item, self.scope, key)
                if allowed:
                    continue
                stats = await self._strategy.get_window_stats(item, self.scope, key)
            except Exception:  # the storage failed: let the request through (see module doc)
                log.warning("rate limit storage unavailable; request allowed", exc_info=True)
                return
            metrics.RATE_LIMITED.labels(self.scope).inc()
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
            raise RateLimited(
                f"Too many requests: the limit is {_describe(item)}. Try again in {retry_after} s.",
                retry_after=retry_after,
                details={"limit": _describe(item), "retry_after_seconds": retry_after},
            )


def _describe(item: RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    if item.multiples > 1:
        return f"{item.amount} per {item.multiples} {unit}s"
    return f"{item.amount} per {unit}"


@dataclass(slots=True)
class Limiters:
    """The app's limiters, sharing one storage (memory, or Redis across processes)."""

    chat: RateLimiter  # chat turns per acting user
    auth: RateLimiter  # sign-in, registration, refresh per client address
    storage: Storage

    def make(self, scope: str, limits: str) -> RateLimiter:
        """Another limiter on the same storage (e.g. a bot's per-session cap)."""
        return RateLimiter(scope, limits, self.storage)


def build_limiters(redis_url: str, chat: str, auth: str) -> Limiters:
    """The chat-turn limiter (per user) and the sign-in limiter (per address), one storage."""
    storage = make_storage(redis_url)
    return Limiters(RateLimiter("chat", chat, storage), RateLimiter("auth", auth, storage), storage)
