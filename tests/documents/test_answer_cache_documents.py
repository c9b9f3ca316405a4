"""A cached grounded answer is missed once a document in scope changed."""

from __future__ import annotations

import dataclasses

import httpx
from sqlalchemy import text

from botgpt.conversations.turn import ChatService
from botgpt.ids import utcnow
from botgpt.llm.fake import FakeProvider
from tests.conftest import AppCtx, AuthedUser
from tests.documents.conftest import Docs
from tests.documents.test_grounded import POLICY


async def test_document_change_invalidates(
    client: httpx.AsyncClient, docs: Docs, user: AuthedUser, fake: FakeProvider, ctx: AppCtx
) -> None:
    chat: ChatService = ctx.app.state.container.chat
    saved = chat.default_profile
    chat.default_profile = dataclasses.replace(saved, answer_cache=True)
    try:
        doc = await docs.ingest(user, "policy.md", POLICY.encode(), "text/markdown")
        body = {
            "message": "What is the refund policy?",
            "mode": "grounded",
            "document_ids": [doc["id"]],
        }

        async def ask() -> dict[str, object]:
            r = await client.post("/api/v1/conversations", json=body, headers=user.headers)
            assert r.status_code == 201, r.text
            reply: dict[str, object] = r.json()["assistant_message"]
            await chat.drain()
            return reply

        first = await ask()
        second = await ask()
        assert (first["source"], second["source"]) == ("model", "cached")
        assert second["citations"] == first["citations"]  # kept with the answer
        async with ctx.app.state.container.engine.begin() as conn:
            await conn.execute(
                text("UPDATE documents SET updated_at = :now WHERE id = :id"),
                {"now": utcnow(), "id": doc["id"]},
            )
        assert (await ask())["source"] == "model"
    finally:
        chat.default_profile = saved
