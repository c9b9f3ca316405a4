"""Replies being generated: batched progress writes, leases, and the sweep of dead ones.

Every assistant reply is inserted `pending` with a lease: `lease_owner` (this process) and
`lease_expires_at`. While this process generates it, `LiveReplies` renews the lease and
stores the text generated so far, for all its live replies in one transaction per flush
interval: a token never waits for the database, and 200 streams cost one commit a second
instead of 200 commits queued in front of the next reply's first write.

A process killed mid-reply stops renewing. Once the lease has expired, any process (at
start, then every few seconds) settles the reply as `failed` with code `interrupted`,
keeping its partial text and leaving the question untouched, so it can be regenerated. A
live reply of another process is never swept: its owner keeps its lease fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, select, text, update

from botgpt.conversations.models import Conversation, Message
from botgpt.events import EventSink, no_events
from botgpt.ids import utcnow
from botgpt.sqlrunner import SqlRunner

log = logging.getLogger("botgpt.leases")

INTERRUPTED = "interrupted"
INTERRUPTED_MESSAGE = "The server generating this reply stopped before it finished."

messages = cast(Table, Message.__table__)
conversations = cast(Table, Conversation.__table__)
m, c = messages.c, conversations.c

# Spelled as in the partial index `ix_messages_live_lease`, so the sweep can use it.
_LIVE = text("messages.status IN ('pending', 'streaming')")

# Literal states (no expanding IN parameter): these run as executemany over many replies.
_PROGRESS = (
    update(messages)
    .where(m.id == bindparam("mid"), _LIVE)
    .values(content=bindparam("content"), status="streaming", lease_expires_at=bindparam("until"))
)
_RENEW = (
    update(messages)
    .where(m.id == bindparam("mid"), _LIVE)
    .values(lease_expires_at=bindparam("until"))
)
_SWEEP = (
    update(messages)
    .where(_LIVE, m.lease_expires_at < bindparam("now"))
    .values(
        status="failed",
        error_code=INTERRUPTED,
        error_message=INTERRUPTED_MESSAGE,
        completed_at=bindparam("now"),
    )
    .returning(m.id, m.conversation_id)
)


def process_id() -> str:
    """Who holds a lease: host, process id and a random tag (process ids get reused)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


def _write(conn: Connection, progress: list[dict[str, Any]], renew: list[dict[str, Any]]) -> None:
    if progress:
        conn.execute(_PROGRESS, progress)
    if renew:
        conn.execute(_RENEW, renew)


def _settle_expired(conn: Connection, now: datetime) -> list[tuple[str, str, str | None]]:
    rows = conn.execute(_SWEEP, {"now": now}).all()
    if not rows:
        return []
    conv_ids = {row.conversation_id for row in rows}
    owners = {
        str(cid): str(uid)
        for cid, uid in conn.execute(select(c.id, c.user_id).where(c.id.in_(conv_ids)))
    }
    return [(row.id, row.conversation_id, owners.get(row.conversation_id)) for row in rows]


class LiveReplies:
    """The replies this process generates: their leases and text so far, written in batches."""

    def __init__(
        self,
        runner: SqlRunner,
        lease_seconds: float = 30.0,
        flush_seconds: float = 1.0,
        owner: str | None = None,
    ) -> None:
        self.runner = runner
        self.lease = timedelta(seconds=lease_seconds)
        self.flush_seconds = min(flush_seconds, lease_seconds / 3)
        self.sweep_seconds = max(self.flush_seconds, min(lease_seconds / 2, 10.0))
        self.owner = owner or process_id()
        self.on_event: EventSink = no_events  # webhooks hear of swept replies
        self._held: dict[str, datetime] = {}  # message id -> when its lease runs out
        self._text: dict[str, str] = {}  # message id -> text not yet written
        self._task: asyncio.Task[None] | None = None
        self._serving = False  # started with the server: sweep even when nothing is held
        self._last_sweep = float("-inf")

    def lease_values(self) -> dict[str, Any]:
        """Columns of a new reply: leased by this process from now on."""
        return {"lease_owner": self.owner, "lease_expires_at": utcnow() + self.lease}

    @property
    def held(self) -> int:
        """How many replies this process holds."""
        return len(self._held)

    def hold(self, message_id: str, expires: datetime | None = None) -> None:
        """This process generates `message_id` now: keep its lease fresh until `release`."""
        self._held[message_id] = expires or utcnow()
        self._ensure_running()

    def progress(self, message_id: str, content: str) -> None:
        """The text so far of a held reply; written with the next batch (not awaited)."""
        if message_id in self._held:
            self._text[message_id] = content

    def release(self, message_id: str) -> None:
        """The reply's outcome is stored (or will never be): stop renewing it."""
        self._held.pop(message_id, None)
        self._text.pop(message_id, None)

    async def flush(self) -> None:
        """Write pending text and renew leases running out, all in one transaction."""
        now = utcnow()
        until = now + self.lease
        due = now + self.lease / 2
        texts, self._text = self._text, {}
        progress = [
            {"mid": mid, "content": content, "until": until}
            for mid, content in texts.items()
            if mid in self._held
        ]
        renew = [
            {"mid": mid, "until": until}
            for mid, expires in self._held.items()
            if expires <= due and mid not in texts
        ]
        if not progress and not renew:
            return
        try:
            await self.runner.run(lambda conn: _write(conn, progress, renew))
        except BaseException:
            for mid, content in texts.items():  # not written: keep for the next try
                if mid in self._held:
                    self._text.setdefault(mid, content)
            raise
        for row in (*progress, *renew):
            if row["mid"] in self._held:  # a reply released meanwhile stays released
                self._held[row["mid"]] = until

    async def sweep(self) -> list[str]:
        """Settle replies whose lease expired as failed/interrupted; their ids."""
        self._last_sweep = asyncio.get_running_loop().time()
        now = utcnow()
        swept = await self.runner.run(lambda conn: _settle_expired(conn, now))
        for message_id, conversation_id, owner_id in swept:
            log.warning("reply %s was interrupted (its process stopped)", message_id)
            if owner_id is not None:
                self.on_event(
                    owner_id,
                    "message.failed",
                    {
                        "conversation_id": conversation_id,
                        "assistant_message_id": message_id,
                        "status": "failed",
                        "error_code": INTERRUPTED,
                    },
                )
        return [message_id for message_id, _, _ in swept]

    async def start(self) -> None:
        """At server start: settle what dead processes left, then keep sweeping."""
        self._serving = True
        try:
            await self.sweep()
        except Exception:
            log.warning("could not sweep interrupted replies", exc_info=True)
        self._ensure_running()

    async def stop(self) -> None:
        """Stop the background work after a last write of what is pending."""
        self._serving = False
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self.flush()

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._serving or self._held:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
                if self._serving and loop.time() - self._last_sweep >= self.sweep_seconds:
                    await self.sweep()
            except Exception:
                log.warning("could not write live replies", exc_info=True)
