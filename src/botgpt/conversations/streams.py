"""Live turns: generation runs in its own task; clients subscribe, leave and re-attach.

Every event of a live turn gets an increasing id and is kept until the turn ends, so a
client that reconnects with `Last-Event-ID` receives what it missed. When the last
subscriber leaves, the turn is cancelled after a grace period (zero by default) and
the assistant message keeps the text generated so far with status `cancelled`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection

from botgpt.conversations import store
from botgpt.conversations.fanout import TurnFanout
from botgpt.conversations.records import Turn, TurnEvent
from botgpt.conversations.turn import ChatService
from botgpt.ids import utcnow

ACTIVE = ("pending", "streaming")
# How long a cancel waits for another process to stop and store the reply.
REMOTE_STOP_SECONDS = 3.0


@dataclass(eq=False)
class LiveTurn:
    """One turn being generated, with its event log and subscribers."""

    turn: Turn
    events: list[tuple[int, TurnEvent]] = field(default_factory=list)
    subscribers: int = 0
    finished: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    idle_timer: asyncio.TimerHandle | None = None

    def publish(self, event: TurnEvent) -> None:
        """Append an event and wake subscribers."""
        self.events.append((len(self.events) + 1, event))
        self.changed.set()
        self.changed = asyncio.Event()


class StreamHub:
    """Registry of live turns in this process, keyed by assistant message id."""

    def __init__(
        self, chat: ChatService, grace_seconds: float = 0.0, fanout: TurnFanout | None = None
    ) -> None:
        self.chat = chat
        self.grace = grace_seconds
        self.fanout = fanout  # with Redis: turns are shared with the other processes
        self._live: dict[str, LiveTurn] = {}

    def start(self, turn: Turn) -> LiveTurn:
        """Begin generating `turn` in the background."""
        live = LiveTurn(turn)
        self._live[turn.assistant.id] = live
        # Announced here, not when the task first runs: under load the task waits a few busy
        # loop iterations, and a client's first event would wait with it.
        self._emit(live, TurnEvent("start", turn.ids()))
        live.task = asyncio.get_running_loop().create_task(self._run(live))
        return live

    @property
    def live_count(self) -> int:
        """How many turns are generating in this process."""
        return len(self._live)

    def get(self, message_id: str) -> LiveTurn | None:
        """The live turn of an assistant message, if it is generating here."""
        return self._live.get(message_id)

    async def _run(self, live: LiveTurn) -> None:
        try:
            async for event in self.chat.events(live.turn):
                if event.event == "start":
                    continue  # announced by `start`
                self._emit(live, event)
                if live.subscribers:
                    # Let subscribers send it now: a provider that delivers several chunks
                    # in one read would otherwise hold the first token back until the
                    # generator next waits for I/O (measured: +0.5 ms to the first token).
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            self._emit(live, TurnEvent("cancelled", {"message_id": live.turn.assistant.id}))
        finally:
            live.finished = True
            self._emit(live, TurnEvent("end", {}))
            self._live.pop(live.turn.assistant.id, None)

    def _emit(self, live: LiveTurn, event: TurnEvent) -> None:
        live.publish(event)
        if self.fanout is not None:
            data = orjson.dumps(event.client_data())
            self.fanout.publish(live.turn.assistant.id, len(live.events), event, data)

    async def remote_events(
        self, message_id: str, after: int, heartbeat: float
    ) -> AsyncIterator[tuple[int, TurnEvent]] | None:
        """Events of a turn another process is generating; None without Redis or if unknown."""
        if self.fanout is None or not await self.fanout.exists(message_id):
            return None
        return self.fanout.events(message_id, after, heartbeat)

    async def cancel_remote(self, message_id: str) -> bool:
        """Ask the other processes to stop this turn; False without Redis."""
        return self.fanout is not None and await self.fanout.request_cancel(message_id)

    async def stop_reply(self, conversation_id: str, owner_id: str, message_id: str) -> str | None:
        """Stop a reply wherever it is generating; its final status (None: no such reply).

        Here: cancel the task. Elsewhere (with Redis): ask the other processes, then wait a
        moment for the owner to store it. Nobody generating it (its process died): the
        message is settled as `cancelled` directly.
        """
        live = self._live.get(message_id)
        if live is not None and live.turn.owner_id == owner_id:
            self.cancel(message_id)
            if live.task is not None:
                await live.task
            return str(live.turn.assistant.status)
        runner = self.chat.runner

        def load(conn: Connection) -> Any:
            return store.load_message(conn, conversation_id, owner_id, message_id)

        if await self.cancel_remote(message_id):
            deadline = asyncio.get_running_loop().time() + REMOTE_STOP_SECONDS
            while (row := await runner.run(load)) is not None and row.status in ACTIVE:
                if asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.05)
            if row is None:
                return None
            if row.status not in ACTIVE:
                return str(row.status)
        now = utcnow()
        return await runner.run(
            lambda conn: store.mark_cancelled(conn, conversation_id, owner_id, message_id, now)
        )

    def cancel(self, message_id: str) -> bool:
        """Stop a live turn; its message ends `cancelled`. False if not live here."""
        live = self._live.get(message_id)
        if live is None or live.task is None:
            return False
        live.task.cancel()
        return True

    async def subscribe(
        self, live: LiveTurn, after: int = 0, heartbeat: float | None = None
    ) -> AsyncIterator[tuple[int, TurnEvent]]:
        """Events of a live turn with id > `after`, until it ends; `ping` events when idle."""
        live.subscribers += 1
        if live.idle_timer is not None:
            live.idle_timer.cancel()
            live.idle_timer = None
        try:
            position = after
            while True:
                pending = live.events[position:]
                for event_id, event in pending:
                    if event.event == "end":
                        return
                    yield event_id, event
                position += len(pending)
                if live.finished and position >= len(live.events):
                    return
                try:
                    # asyncio.timeout, not wait_for: wait_for runs the wait in a task of
                    # its own, one more loop iteration before each event reaches the client.
                    async with asyncio.timeout(heartbeat):
                        await live.changed.wait()
                except TimeoutError:
                    yield 0, TurnEvent("ping", {})
        finally:
            live.subscribers -= 1
            if live.subscribers == 0 and not live.finished:
                self._schedule_cancel(live)

    def _schedule_cancel(self, live: LiveTurn) -> None:
        mid = live.turn.assistant.id
        if self.grace <= 0:
            self.cancel(mid)
            return
        live.idle_timer = asyncio.get_running_loop().call_later(
            self.grace, self._cancel_if_idle, live
        )

    def _cancel_if_idle(self, live: LiveTurn) -> None:
        if live.subscribers == 0 and not live.finished:
            self.cancel(live.turn.assistant.id)

    async def close(self) -> None:
        """Cancel every live turn (shutdown) and wait for their messages to be stored."""
        tasks = [lt.task for lt in self._live.values() if lt.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
