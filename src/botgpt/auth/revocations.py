"""Credential revocations reach every process at once over Redis pub/sub.

Each process caches API keys (30 s) and login sessions (5 s) to keep authentication off the
database. Without Redis a revoked key works elsewhere until its cache entry expires; with
Redis the process that revokes publishes the event and every process (itself included)
drops the entry as soon as it arrives. A lost message only falls back to that expiry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botgpt.redis_channel import RedisChannel

Apply = Callable[[str, str], None]


class RevocationBus(RedisChannel):
    """Publishes revocations (kind, id) and applies those of every process via `apply`."""

    def __init__(self, url: str, apply: Apply, channel: str = "botgpt:auth:revoked") -> None:
        def handle(message: dict[str, Any]) -> None:
            apply(str(message["kind"]), str(message["id"]))

        super().__init__(url, channel, handle)

    async def revoke(self, kind: str, ident: str) -> None:
        """Tell every process (a Redis failure is logged; the cache expiry still bounds it)."""
        await self.publish({"kind": kind, "id": ident})
