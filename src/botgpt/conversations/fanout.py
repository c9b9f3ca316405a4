"""Live turns shared between processes through Redis (DESIGN: stream fan-out).

Behind a load balancer the request that re-attaches to a reply, or cancels it, may reach a
process other than the one generating it. The generating process appends every event of
the turn to a Redis stream (``botgpt:turn:<message id>``, kept an hour); any process can
read it from any event id on, until the turn's ``end``. Cancels go out on a pub/sub channel
and the process that owns the turn stops it. Appends are batched by one writer task per
turn, so a token never waits for Redis on its way to the local client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from redis.exceptions import RedisError

from botgpt.conversations.records import TurnEvent
from botgpt.redis_channel import LazyRedis, RedisChannel

log = logging.getLogger("botgpt.streams")

PING = TurnEvent("ping", {})


class TurnFanout(LazyRedis):
    """Publishes this process's live turns and reads (or cancels) those of other processes."""

    def __init__(
        self,
        url: str,
        on_cancel: Callable[[str], object],
        *,
        prefix: str = "botgpt:turn:",
        keep_seconds: int = 3600,
    ) -> None:
        super().__init__(url)
        self.prefix = prefix
        self.keep_seconds = keep_seconds

        def cancel(message: dict[str, Any]) -> None:
            on_cancel(str(message["message_id"]))

        self.cancels = RedisChannel(url, prefix + "cancel", cancel)
        self._pending: dict[str, list[tuple[int, str, bytes]]] = {}
        self._writers: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        """Listen for cancels."""
        await self.cancels.start()

    async def stop(self) -> None:
        """Finish pending appends, stop listening, close the connection."""
        for task in list(self._writers.values()):
            await task
        await self.cancels.stop()
        await self.close_client()

    # -- the generating process -------------------------------------------------------------
    def publish(self, message_id: str, event_id: int, event: TurnEvent, data: bytes) -> None:
        """Queue an event of a local turn for other processes (`data`: its JSON)."""
        self._pending.setdefault(message_id, []).append((event_id, event.event, data))
        if message_id not in self._writers:
            self._writers[message_id] = asyncio.get_running_loop().create_task(
                self._write(message_id)
            )

    async def _write(self, message_id: str) -> None:
        key = self.prefix + message_id
        while batch := self._pending.pop(message_id, None):
            pipe = self.client.pipeline(transaction=False)
            for event_id, name, data in batch:
                pipe.xadd(key, {"id": event_id, "event": name, "data": data})
            pipe.expire(key, self.keep_seconds)
            try:
                await pipe.execute()
            except RedisError:
                log.warning("could not share turn events of %s", message_id, exc_info=True)
        # No await between the empty pop and this: a new event starts a new writer.
        del self._writers[message_id]

    # -- other processes --------------------------------------------------------------------
    async def exists(self, message_id: str) -> bool:
        """Whether some process is sharing (or recently shared) this turn."""
        try:
            return bool(await self.client.exists(self.prefix + message_id))
        except RedisError:
            return False

    async def events(
        self, message_id: str, after: int, heartbeat: float
    ) -> AsyncIterator[tuple[int, TurnEvent]]:
        """Events with id > `after` until the turn ends; pings while nothing happens."""
        key = self.prefix + message_id
        position = "0-0"
        idle = 0.0
        while True:
            read: Any = await self.client.xread({key: position}, count=100, block=1000)
            if not read:
                idle += 1.0
                if idle >= heartbeat:
                    idle = 0.0
                    if not await self.client.exists(key):
                        return  # expired: the generating process is long gone
                    yield 0, PING
                continue
            idle = 0.0
            for entry_id, fields in read[0][1]:
                position = entry_id
                name = fields[b"event"].decode()
                if name == "end":
                    return
                event_id = int(fields[b"id"])
                if event_id > after:
                    yield event_id, TurnEvent(name, orjson.loads(fields[b"data"]))

    async def request_cancel(self, message_id: str) -> bool:
        """Ask the process generating this turn to stop it; False if Redis is unreachable."""
        return await self.cancels.publish({"message_id": message_id})
