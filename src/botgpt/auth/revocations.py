"""Credential revocations reach every process at once over Redis pub/sub.

Each process caches API keys (30 s) and login sessions (5 s) to keep authentication off the
database. Without Redis a revoked key works elsewhere until its cache entry expires; with
Redis the process that revokes publishes the event and every process (itself included)
drops the entry as soon as it arrives. A lost message only falls back to that expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

log = logging.getLogger("botgpt.auth")

Apply = Callable[[str, str], None]


class RevocationBus:
    """Publishes revocations (kind, id) and applies those of every process via `apply`."""

    def __init__(self, url: str, apply: Apply, channel: str = "botgpt:auth:revoked") -> None:
        self.url = url
        self.apply = apply
        self.channel = channel
        self._client: redis.Redis | None = None
        self._listener: asyncio.Task[None] | None = None
        self._stopping = False
        self.ready = asyncio.Event()  # set once subscribed (tests wait for it)

    @property
    def client(self) -> redis.Redis:
        """The Redis client (made on first use, in the running loop)."""
        if self._client is None:
            self._client = redis.Redis.from_url(self.url)
        return self._client

    async def publish(self, kind: str, ident: str) -> None:
        """Tell every process; a Redis failure is logged (the cache expiry still bounds it)."""
        message = json.dumps({"kind": kind, "id": ident})
        try:
            await self.client.publish(self.channel, message)
        except RedisError:
            log.warning("could not publish a %s revocation", kind, exc_info=True)

    async def start(self) -> None:
        """Start listening."""
        if self._listener is None:
            self._stopping = False
            self._listener = asyncio.create_task(self._listen(), name="revocations")

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        self._stopping = True
        if self._listener is not None:
            # The listener wakes at least once a second and sees the flag.
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _listen(self) -> None:
        while not self._stopping:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.ready.set()
                while not self._stopping:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._handle(message)
            except RedisError:
                log.warning("revocation channel lost; reconnecting in 1 s", exc_info=True)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(RedisError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _handle(self, message: dict[str, Any]) -> None:
        try:
            event = json.loads(message["data"])
            self.apply(str(event["kind"]), str(event["id"]))
        except (KeyError, TypeError, ValueError):
            log.warning("unreadable revocation message ignored")
