"""Grounded conversations: citations, follow-up questions, the not-found case, readiness."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from botgpt.llm.base import ChatRequest
from botgpt.llm.fake import FakeProvider
from tests.conftest import AuthedUser, UserFactory
from tests.documents.conftest import Docs


def cite_passage(phrase: str, template: str) -> Callable[[ChatRequest], str]:
    """A fake reply citing whichever numbered source in the prompt contains `phrase`."""

    def reply(request: ChatRequest) -> str:
        prompt = "\n".join(m.content for m in request.messages)
        for block in prompt.split("\n["):
            number, _, body = block.partition("]")
            if number.isdigit() and phrase in body:
                return template.format(n=number)
        return "No source matched."

    return reply


POLICY = """# Customer policies

## Shipping
Orders ship within two business days from our warehouse in Lyon. Express delivery costs 12 euros.

## Refunds
We offer a full refund within 30 days of purchase for any unused product.

## Requesting a refund
To request a refund, email refunds@example.com with your order number and the reason. Refunds are
paid back to the original payment method within five days.

## Warranty
Electronic devices carry a two year warranty covering manufacturing defects.
"""


async def _grounded(
    client: httpx.AsyncClient, user: AuthedUser, doc_id: str, question: str
) -> httpx.Response:
    return await client.post(
        "/api/v1/conversations",
        json={"first_message": question, "mode": "grounded_rag", "document_ids": [doc_id]},
        headers=user.headers,
    )


async def test_grounded_turn_cites_the_right_passage(
    client: httpx.AsyncClient, docs: Docs, user: AuthedUser, fake: FakeProvider
) -> None:
    doc = await docs.ingest(user, "policy.md", POLICY.encode(), "text/markdown")
    assert doc["status"] == "ready"
    fake.enqueue(cite_passage("full refund within 30 days", "A full refund within 30 days [{n}]."))
    r = await _grounded(client, user, doc["id"], "What is your refund policy?")
    assert r.status_code == 201, r.text
    reply = r.json()["assistant_message"]
    prompt = "\n".join(m.content for m in fake.requests[-1].messages)
    assert "full refund within 30 days" in prompt
    assert "cite" in prompt.lower()
    cites = reply["citations"]
    assert len(cites) == 1 and cites[0]["cited_in_answer"] is True
    c = cites[0]
    assert c["document_id"] == doc["id"] and c["document_name"] == "policy.md"
    assert "full refund within 30 days" in c["snippet"]
    # The span points at the passage in the document's text.
    assert c["char_end"] > c["char_start"] >= 0
    manifest = reply["context_manifest"]
    assert any(i["kind"] == "grounding" for i in manifest["items"])
    # Citations are stored: GET returns them.
    g = await client.get(
        f"/api/v1/conversations/{r.json()['conversation_id']}", headers=user.headers
    )
    assert g.json()["messages"][1]["citations"] == cites


async def test_follow_up_question_finds_the_earlier_topic(
    client: httpx.AsyncClient, docs: Docs, user: AuthedUser, fake: FakeProvider
) -> None:
    doc = await docs.ingest(user, "policy.md", POLICY.encode(), "text/markdown")
    fake.enqueue(
        cite_passage("full refund", "Full refund within 30 days [{n}]."),
        cite_passage("refunds@example.com", "Email refunds@example.com [{n}]."),
    )
    r = await _grounded(client, user, doc["id"], "What is your refund policy?")
    cid = r.json()["conversation_id"]
    r = await client.post(
        f"/api/v1/conversations/{cid}/messages",
        json={"content": "How do I request one?"},
        headers=user.headers,
    )
    assert r.status_code == 201, r.text
    reply = r.json()["assistant_message"]
    assert reply["content"].startswith("Email refunds@example.com")  # the passage was found
    assert "refunds@example.com" in reply["citations"][0]["snippet"]
    assert "refund" in reply["context_manifest"]["grounding"]["query"].lower()


async def test_nothing_relevant_says_so_without_the_model(
    client: httpx.AsyncClient, docs: Docs, user: AuthedUser, fake: FakeProvider
) -> None:
    doc = await docs.ingest(user, "policy.md", POLICY.encode(), "text/markdown")
    calls = len(fake.requests)
    r = await _grounded(client, user, doc["id"], "Who composed the Moonlight Sonata?")
    assert r.status_code == 201, r.text
    reply = r.json()["assistant_message"]
    assert "could not find" in reply["content"].lower()
    assert reply["citations"] == [] and reply["status"] == "complete"
    assert len(fake.requests) == calls  # no model call, nothing invented


async def test_grounded_needs_ready_owned_documents(
    client: httpx.AsyncClient, docs: Docs, users: UserFactory
) -> None:
    owner, other = await users.create(), await users.create()
    doc = await docs.ingest(owner, "policy.md", POLICY.encode(), "text/markdown")
    r = await _grounded(client, other, doc["id"], "refunds?")
    assert r.status_code == 404
    r = await client.get("/api/v1/conversations", headers=other.headers)
    assert r.json()["total"] == 0  # nothing stored
    # A document still being ingested: 409 with its status, and nothing stored.
    await docs.execute("UPDATE documents SET status = 'embedding' WHERE id = :id", id=doc["id"])
    try:
        r = await _grounded(client, owner, doc["id"], "refunds?")
        assert r.status_code == 409, r.text
        details = r.json()["error"]["details"]["documents"]
        assert details[0]["status"] == "embedding"
        r = await client.get("/api/v1/conversations", headers=owner.headers)
        assert r.json()["total"] == 0
    finally:
        await docs.execute("UPDATE documents SET status = 'ready' WHERE id = :id", id=doc["id"])
    r = await _grounded(client, owner, doc["id"], "What is the refund policy?")
    assert r.status_code == 201
    cid = r.json()["conversation_id"]
    await docs.execute("UPDATE documents SET status = 'parsing' WHERE id = :id", id=doc["id"])
    try:
        r = await client.post(
            f"/api/v1/conversations/{cid}/messages",
            json={"content": "And shipping?"},
            headers=owner.headers,
        )
        assert r.status_code == 409
        g = await client.get(f"/api/v1/conversations/{cid}", headers=owner.headers)
        assert g.json()["message_count"] == 2  # the refused question was not stored
    finally:
        await docs.execute("UPDATE documents SET status = 'ready' WHERE id = :id", id=doc["id"])


async def test_patch_attaches_documents_and_switches_mode(
    client: httpx.AsyncClient, docs: Docs, users: UserFactory, fake: FakeProvider
) -> None:
    owner, other = await users.create(), await users.create()
    doc = await docs.ingest(owner, "policy.md", POLICY.encode(), "text/markdown")
    foreign = await docs.ingest(other, "policy.md", POLICY.encode(), "text/markdown")
    r = await client.post(
        "/api/v1/conversations", json={"first_message": "hi"}, headers=owner.headers
    )
    cid = r.json()["conversation_id"]
    url = f"/api/v1/conversations/{cid}"
    r = await client.patch(url, json={"mode": "grounded"}, headers=owner.headers)
    assert r.status_code == 422  # grounded needs documents
    r = await client.patch(url, json={"document_ids": [foreign["id"]]}, headers=owner.headers)
    assert r.status_code == 404  # another user's document
    r = await client.patch(
        url, json={"mode": "rag_mode", "document_ids": [doc["id"]]}, headers=owner.headers
    )
    assert r.status_code == 200 and r.json()["mode"] == "grounded"
    g = await client.get(url, headers=owner.headers)
    assert g.json()["document_ids"] == [doc["id"]]
    fake.enqueue(cite_passage("two business days", "Two business days [{n}]."))
    r = await client.post(
        f"{url}/messages", json={"content": "How fast do orders ship?"}, headers=owner.headers
    )
    assert r.status_code == 201
    assert r.json()["assistant_message"]["content"].startswith("Two business days [")
    assert "two business days" in r.json()["assistant_message"]["citations"][0]["snippet"]


async def test_summary_request_gets_passages(
    client: httpx.AsyncClient, docs: Docs, user: AuthedUser, fake: FakeProvider
) -> None:
    doc = await docs.ingest(user, "policy.md", POLICY.encode(), "text/markdown")
    fake.enqueue("It covers shipping, refunds and warranty [1].")
    r = await _grounded(client, user, doc["id"], "Summarize the document")
    assert r.status_code == 201
    reply = r.json()["assistant_message"]
    assert reply["content"].startswith("It covers")  # the model was asked, with sources
    assert reply["citations"] and reply["citations"][0]["document_id"] == doc["id"]


async def test_citation_names_the_page_of_the_cited_sentence(
    client: httpx.AsyncClient, docs: Docs, user: AuthedUser, fake: FakeProvider
) -> None:
    from tests.documents.samples import make_pdf

    pdf = make_pdf(
        [
            "The handbook covers leave. Staff plan their holidays early.",
            "Zebra crossings are painted yellow on the campus roads.",
            "Parking permits are renewed every January at the front desk.",
        ]
    )
    doc = await docs.ingest(user, "handbook.pdf", pdf, "application/pdf")
    assert doc["status"] == "ready" and doc["pages"] == 3
    fake.enqueue(cite_passage("Zebra crossings", "Zebra crossings are painted yellow [{n}]."))
    r = await _grounded(client, user, doc["id"], "What colour are the zebra crossings?")
    assert r.status_code == 201, r.text
    cite = r.json()["assistant_message"]["citations"][0]
    # The passage is the whole short document (pages 1-3); the cited sentence is on page 2.
    assert (cite["page_start"], cite["page_end"]) == (1, 3)
    assert cite["page"] == 2
    assert cite["snippet"].startswith("Zebra crossings are painted yellow")
    found = await client.post(
        "/api/v1/search", json={"query": "zebra crossings yellow"}, headers=user.headers
    )
    hit = found.json()["results"][0]
    assert (hit["page"], hit["page_end"]) == (1, 3)


async def test_documents_named_on_a_message_ground_that_turn(
    client: httpx.AsyncClient, docs: Docs, user: AuthedUser, fake: FakeProvider
) -> None:
    """Seed 000: PUT .../messages {message, document_ids} on an open conversation answers
    from those documents, with citations."""
    doc = await docs.ingest(user, "policy.md", POLICY.encode(), "text/markdown")
    r = await client.post(
        "/api/v1/conversations", json={"message": "Hello there"}, headers=user.headers
    )
    cid = r.json()["conversation_id"]
    assert r.json()["mode"] == "open"
    fake.enqueue(cite_passage("two year warranty", "Devices have a two year warranty [{n}]."))
    r = await client.put(
        f"/api/v1/conversations/{cid}/messages",
        json={
            "message": "How long is the warranty on electronic devices?",
            "document_ids": [doc["id"]],
        },
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    reply = r.json()["assistant_message"]
    assert reply["citations"] and reply["citations"][0]["cited_in_answer"] is True
    assert "two year warranty" in reply["citations"][0]["snippet"]
    assert "two year warranty" in "\n".join(m.content for m in fake.requests[-1].messages)
