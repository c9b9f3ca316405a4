"""Grounded replies checked sentence by sentence against their sources, in the chat turn:
annotate marks, strict removes (and holds the text back), a supported sentence gets its
citation, and a grounded turn whose model is down answers with quotes. Both backends, the
fake model, the real MiniLM embedder."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import httpx
import pytest

from botgpt.conversations.turn import ChatService
from botgpt.llm.errors import ProviderUnavailable
from botgpt.llm.fake import FakeProvider
from tests.api.test_streaming import parse_frames
from tests.conftest import AppCtx, AuthedUser
from tests.documents.conftest import Docs

HANDBOOK = """# Staff handbook

## Annual leave
Full-time employees receive 25 days of paid annual leave each year. Leave requests go to
your line manager at least two weeks in advance.

## Parking
Staff parking permits are renewed every January at the front desk.
"""
QUESTION = "How many days of paid annual leave do full-time employees get?"


@pytest.fixture
def policy(ctx: AppCtx) -> Iterator[Callable[[str], None]]:
    chat: ChatService = ctx.app.state.container.chat
    saved = chat.default_profile

    def use(name: str) -> None:
        grounding = dataclasses.replace(saved.grounding, support_policy=name)
        chat.default_profile = dataclasses.replace(saved, grounding=grounding)

    yield use
    chat.default_profile = saved


async def _ask(client: httpx.AsyncClient, user: AuthedUser, doc_id: str) -> httpx.Response:
    return await client.post(
        "/api/v1/conversations",
        json={"message": QUESTION, "mode": "grounded", "document_ids": [doc_id]},
        headers=user.headers,
    )


async def test_annotate_marks_a_fabricated_number_and_cites_the_supported_sentence(
    client: httpx.AsyncClient,
    docs: Docs,
    user: AuthedUser,
    fake: FakeProvider,
    policy: Callable[[str], None],
) -> None:
    policy("annotate")
    doc = await docs.ingest(user, "handbook.md", HANDBOOK.encode(), "text/markdown")
    fake.enqueue(
        "Full-time employees receive 25 days of paid annual leave each year. "
        "Employees also get 365 days of sick leave."
    )
    r = await _ask(client, user, doc["id"])
    assert r.status_code == 201, r.text
    reply = r.json()["assistant_message"]
    support = reply["support"]
    assert support["policy"] == "annotate" and support["unsupported"] == 1
    verdicts = {s["text"].strip(): s for s in support["sentences"]}
    fabricated = next(v for k, v in verdicts.items() if "365" in k)
    assert fabricated["supported"] is False
    assert "[unsupported]" in reply["content"] and "365 days" in reply["content"]
    # The supported sentence got the citation the model forgot.
    assert "25 days of paid annual leave each year [" in reply["content"]
    assert any(c["cited_in_answer"] for c in reply["citations"])


async def test_strict_removes_it_before_anyone_reads_it(
    client: httpx.AsyncClient,
    docs: Docs,
    user: AuthedUser,
    fake: FakeProvider,
    policy: Callable[[str], None],
) -> None:
    policy("strict")
    doc = await docs.ingest(user, "handbook.md", HANDBOOK.encode(), "text/markdown")
    fake.enqueue(
        "Full-time employees receive 25 days of paid annual leave each year. "
        "Employees also get 365 days of sick leave."
    )
    r = await client.post(
        "/api/v1/conversations?stream=true",
        json={"message": QUESTION, "mode": "grounded", "document_ids": [doc["id"]]},
        headers=user.headers,
    )
    frames = parse_frames(r.text)
    streamed = "".join(f["data"]["text"] for f in frames if f.get("event") == "delta")
    assert "365" not in streamed and "25 days" in streamed  # nothing unchecked was sent
    cid = frames[0]["data"]["conversation_id"]
    stored = (await client.get(f"/api/v1/conversations/{cid}", headers=user.headers)).json()
    reply = stored["messages"][1]
    assert "365" not in reply["content"] and reply["support"]["policy"] == "strict"


async def test_provider_down_answers_with_quotes(
    client: httpx.AsyncClient,
    docs: Docs,
    user: AuthedUser,
    fake: FakeProvider,
    policy: Callable[[str], None],
) -> None:
    policy("annotate")
    doc = await docs.ingest(user, "handbook.md", HANDBOOK.encode(), "text/markdown")
    fake.enqueue(*[ProviderUnavailable("down")] * 3)  # every retry fails
    r = await _ask(client, user, doc["id"])
    assert r.status_code == 201, r.text
    reply = r.json()["assistant_message"]
    assert reply["source"] == "extractive" and reply["status"] == "complete"
    assert reply["support"]["extractive"] is True
    assert reply["support"]["reason"] == "provider_unavailable"
    assert "25 days of paid annual leave" in reply["content"]
    assert reply["content"].startswith("From handbook.md")
    quote = reply["support"]["quotes"][0]
    assert quote["passage"] >= 1 and quote["end"] > quote["start"]
    assert reply["model"] is None and reply["usage"]["total_tokens"] == 0
