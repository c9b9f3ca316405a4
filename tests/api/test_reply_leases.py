"""Reply leases (issue 8, item 3): a reply left by a dead process ends failed/interrupted."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import Connection, select, update

from botgpt.conversations.leases import LiveReplies, messages
from botgpt.conversations.records import TurnRequest
from botgpt.conversations.turn import ChatService
from botgpt.ids import utcnow
from botgpt.llm.fake import FakeProvider, FakeReply
from tests.conftest import AppCtx, AuthedUser, ConversationFactory


def _chat(ctx: AppCtx) -> ChatService:
    chat: ChatService = ctx.app.state.container.chat
    return chat


async def _row(chat: ChatService, message_id: str) -> Any:
    def load(conn: Connection) -> Any:
        return conn.execute(select(messages).where(messages.c.id == message_id)).first()

    return await chat.runner.run(load)


async def _leave_behind(
    chat: ChatService, message_id: str, content: str, expires_in: float, owner: str
) -> None:
    """Make a reply look like another process is (or was) generating it."""
    values = {
        "status": "streaming",
        "content": content,
        "lease_owner": owner,
        "lease_expires_at": utcnow() + timedelta(seconds=expires_in),
    }
    await chat.runner.run(
        lambda conn: conn.execute(
            update(messages).where(messages.c.id == message_id).values(**values)
        )
    )


async def test_expired_lease_is_settled_as_interrupted_and_can_be_regenerated(
    ctx: AppCtx,
    client: httpx.AsyncClient,
    user: AuthedUser,
    conversations: ConversationFactory,
) -> None:
    chat = _chat(ctx)
    conv = await conversations.create(user, "First question")
    cid = str(conv["conversation_id"])
    # A second turn whose process died mid-reply, and a live one of another process.
    dead = await chat.prepare(TurnRequest(user.id, "Second question", conversation_id=cid))
    other = await conversations.create(user, "Elsewhere")
    live = await chat.prepare(
        TurnRequest(user.id, "Still going", conversation_id=str(other["conversation_id"]))
    )
    dead_id, live_id = dead.assistant.id, live.assistant.id
    await _leave_behind(chat, dead_id, "Half an ans", -1, "gone-host:4242:dead")
    await _leave_behind(chat, live_id, "Going", 60, "other-host:7:alive")

    swept = await chat.leases.sweep()

    assert dead_id in swept and live_id not in swept
    r = await client.get(f"/api/v1/conversations/{cid}", headers=user.headers)
    assert r.status_code == 200
    history = r.json()["messages"]
    question, reply = history[-2], history[-1]
    assert question["content"] == "Second question" and question["status"] == "complete"
    assert reply["id"] == dead_id
    assert reply["status"] == "failed"
    assert reply["content"] == "Half an ans"  # the partial text is kept
    assert reply["error"]["code"] == "interrupted"
    assert (await _row(chat, live_id)).status == "streaming"  # the other process's reply

    r = await client.post(
        f"/api/v1/conversations/{cid}/messages/{dead_id}/regenerate", headers=user.headers
    )
    assert r.status_code == 201, r.text
    assert r.json()["assistant_message"]["status"] == "complete"
    await _leave_behind(chat, live_id, "Going", -1, "other-host:7:alive")
    assert live_id in await chat.leases.sweep()  # settled once that process stops renewing


async def test_generating_replies_keep_their_leases_fresh(
    ctx: AppCtx, user: AuthedUser, fake: FakeProvider
) -> None:
    """Replies generating longer than their lease are never swept by another process, and
    their text so far is written meanwhile (several replies in one batch)."""
    chat = _chat(ctx)
    saved = chat.leases
    chat.leases = LiveReplies(chat.runner, lease_seconds=1.0, flush_seconds=0.1, owner="proc-a")
    other = LiveReplies(chat.runner, lease_seconds=1.0, flush_seconds=0.1, owner="proc-b")
    text = "word " * 60
    replies = 3
    for _ in range(replies):
        fake.enqueue(FakeReply(text=text, chunk_size=5, chunk_delay=0.05))  # about 3 s
    try:
        turns = [
            await chat.prepare(TurnRequest(user.id, f"Talk for a while {i}"))
            for i in range(replies)
        ]
        ids = [turn.assistant.id for turn in turns]
        events: dict[str, list[str]] = {mid: [] for mid in ids}
        partial: dict[str, str] = {}

        async def generate(turn: Any) -> None:
            async for event in chat.events(turn):
                events[turn.assistant.id].append(event.event)

        tasks = [asyncio.create_task(generate(turn)) for turn in turns]
        swept: list[str] = []
        while not all(task.done() for task in tasks):
            swept += await other.sweep()
            for mid in ids:
                row = await _row(chat, mid)
                if row.status == "streaming" and row.content:
                    partial[mid] = row.content
                    assert row.lease_owner == "proc-a"
            await asyncio.sleep(0.2)
        await asyncio.gather(*tasks)
    finally:
        chat.leases = saved
    assert not set(swept) & set(ids)
    for mid in ids:
        assert events[mid][0] == "start" and events[mid][-1] == "done"
        assert partial.get(mid) and text.startswith(partial[mid])  # progress was written
        row = await _row(chat, mid)
        assert row.status == "complete" and row.content == text
    assert chat.leases.held == 0
