"""A bot with knowledge answers visitors from its documents, cites them, and says so when they
do not cover a question (listed for the owner as unanswered)."""

from __future__ import annotations

import httpx

from botgpt.llm.fake import FakeProvider
from tests.bots.test_public_chat import make_bot, say
from tests.conftest import AuthedUser
from tests.documents.conftest import Docs
from tests.documents.test_grounded import POLICY, cite_passage


async def test_grounded_bot_cites_and_refuses_what_its_documents_do_not_cover(
    client: httpx.AsyncClient, docs: Docs, user: AuthedUser, fake: FakeProvider
) -> None:
    doc = await docs.ingest(user, "policy.md", POLICY.encode(), "text/markdown")
    bot = await make_bot(client, user, document_ids=[doc["id"]], top_k=3)
    assert bot["grounded"] is True and bot["document_ids"] == [doc["id"]]
    fake.enqueue(cite_passage("full refund within 30 days", "A full refund within 30 days [{n}]."))
    r = await say(client, bot["id"], "What is your refund policy?")
    reply = r.json()
    assert r.status_code == 200, r.text
    assert (reply["source"] == "model" and "[1]" in reply["response"]) or "[" in reply["response"]
    cited = [c for c in reply["citations"] if c["cited_in_answer"]]
    assert cited and cited[0]["document_id"] == doc["id"]
    assert "full refund within 30 days" in cited[0]["snippet"]
    # The bot's own persona frames the grounded prompt.
    assert fake.requests[-1].messages[0].content == "You are the Shop helper bot."
    calls = len(fake.requests)
    r = await say(client, bot["id"], "Who composed the Moonlight Sonata?")  # a new visitor
    refusal = r.json()
    assert refusal["source"] == "not_found" and len(fake.requests) == calls
    assert "could not find" in refusal["response"]
    unanswered = (
        await client.get(f"/api/v1/bots/{bot['id']}/unanswered", headers=user.headers)
    ).json()
    assert [i["question"] for i in unanswered["items"]] == ["Who composed the Moonlight Sonata?"]
    stats = (await client.get(f"/api/v1/analytics/bots/{bot['id']}", headers=user.headers)).json()
    assert stats["not_found"] == 1 and stats["not_found_rate"] == 0.5
