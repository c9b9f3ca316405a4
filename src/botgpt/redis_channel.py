"""A Redis pub/sub channel every process listens to: JSON messages in, a handler called out.

(`LazyRedis`, the client holder it is built on, serves the other Redis users too.)

Used where one process must reach the others at once (credential revocations, cancelling a
reply that another process is generating). Delivery is best effort, as pub/sub is: callers
keep a fallback for a lost message (cache expiry, the database state).
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

log = logging.getLogger("botgpt.redis")

Handler = Callable[[dict[str, Any]], None]


class LazyRedis:
    """Holds one Redis client, made on first use so it belongs to the running loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client: redis.Redis | None = None

    @property
    def client(self) -> redis.Redis:
        """The Redis client."""
        if self._client is None:
            self._client = redis.Redis.from_url(self.url)
        return self._client

    async def close_client(self) -> None:
        """Close the client's connections (a later use opens new ones)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class RedisChannel(LazyRedis):
    """Publish to one channel; call `handler` for every message on it (own ones included)."""

    def __init__(self, url: str, channel: str, handler: Handler) -> None:
        super().__init__(url)
        self.channel = channel
        self.handler = handler
        self._listener: asyncio.Task[None] | None = None
        self._stopping = False
        self.ready = asyncio.Event()  # set once subscribed

    async def publish(self, message: dict[str, Any]) -> bool:
        """Send to every listener; False (and a warning) if Redis could not be reached."""
        try:
            await self.client.publish(self.channel, json.dumps(message))
        except RedisError:
            log.warning("could not publish on %s", self.channel, exc_info=True)
            return False
        return True

    async def start(self) -> None:
        """Start listening."""
        if self._listener is None:
            self._stopping = False
            self._listener = asyncio.create_task(self._listen(), name=f"listen:{self.channel}")

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        self._stopping = True
        if self._listener is not None:
            # The listener wakes four times a second and sees the flag (cancelling a
            # blocked redis-py read does not reliably end it).
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await self.close_client()

    async def _listen(self) -> None:
        while not self._stopping:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.ready.set()
                while not self._stopping:
                    message = await pubsub.get_message(timeout=0.25)
                    if message is not None:
                        self._handle(message)
            except RedisError:
                log.warning("%s lost; reconnecting in 1 s", self.channel, exc_info=True)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(RedisError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _handle(self, message: dict[str, Any]) -> None:
        try:
            payload = json.loads(message["data"])
            if not isinstance(payload, dict):
                raise TypeError("not an object")
            self.handler(payload)
        except (KeyError, TypeError, ValueError):
            log.warning("unreadable message on %s ignored", self.channel)
