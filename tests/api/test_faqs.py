"""FAQs: CRUD, PUT/PATCH, pagination and filters, ownership, semantic search, best_match,
validation; on SQLite and PostgreSQL with the real MiniLM embedder."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from botgpt.exceptions import Conflict
from botgpt.faqs.models import Faq
from botgpt.faqs.schemas import FaqCreate
from botgpt.faqs.service import FaqService
from tests.conftest import AppCtx, AuthedUser, UserFactory

URL = "/api/v1/faqs"
REFUND = "How can I request a refund?"
SHIPPING = "How long does shipping take?"
PASSWORD = "How do I reset my password?"
MONEY_BACK = "How do I get my money back?"


async def make(
    client: httpx.AsyncClient, owner: AuthedUser, question: str, **fields: Any
) -> dict[str, Any]:
    """Create an FAQ through the API and return its body."""
    payload = {"question": question, "answer": f"Answer to: {question}", **fields}
    r = await client.post(URL, json=payload, headers=owner.headers)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def search(
    client: httpx.AsyncClient, owner: AuthedUser, q: str, **params: Any
) -> list[dict[str, Any]]:
    """The search results for `q`."""
    r = await client.get(f"{URL}/search", params={"q": q, **params}, headers=owner.headers)
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


def service(ctx: AppCtx) -> FaqService:
    """The FAQ service of the app under test."""
    c = ctx.app.state.container
    return FaqService(c.docs.embedder, c.sessions)


async def test_crud_round_trip(client: httpx.AsyncClient, user: AuthedUser) -> None:
    body = await make(
        client,
        user,
        "  How can I request a refund?  ",
        answer="Write to support within 30 days.",
        category="billing",
        tags=["refund", "money", "refund"],
        language="en",
    )
    assert body["question"] == REFUND  # surrounding whitespace removed
    assert body["answer"] == "Write to support within 30 days."
    assert body["category"] == "billing" and body["tags"] == ["refund", "money"]
    assert body["status"] == "active" and body["language"] == "en" and body["hits"] == 0
    assert body["user_id"] == user.id and body["embedding_model"]
    assert body["created_at"] and body["updated_at"]
    fid = body["id"]

    r = await client.get(f"{URL}/{fid}", headers=user.headers)
    assert r.status_code == 200 and r.json() == {**body, "view_count": 1}  # a read is a view
    r = await client.get(URL, headers=user.headers)
    assert r.status_code == 200
    assert [f["id"] for f in r.json()["items"]] == [fid]

    r = await client.delete(f"{URL}/{fid}", headers=user.headers)
    assert r.status_code == 204
    r = await client.get(f"{URL}/{fid}", headers=user.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await client.delete(f"{URL}/{fid}", headers=user.headers)
    assert r.status_code == 404
    assert (await client.get(URL, headers=user.headers)).json()["total"] == 0


async def test_put_and_patch_update_only_fields_sent(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    body = await make(client, user, REFUND, category="billing", tags=["refund"])
    fid = body["id"]

    r = await client.patch(
        f"{URL}/{fid}", json={"answer": "Use the refund form."}, headers=user.headers
    )
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["answer"] == "Use the refund form."
    assert patched["question"] == REFUND and patched["category"] == "billing"
    assert patched["tags"] == ["refund"] and patched["updated_at"] >= body["updated_at"]

    r = await client.put(
        f"{URL}/{fid}",
        json={"category": "payments", "tags": ["a", "b"], "status": "draft", "language": "de"},
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    put = r.json()
    assert put["category"] == "payments" and put["tags"] == ["a", "b"]
    assert put["status"] == "draft" and put["language"] == "de"
    assert put["answer"] == "Use the refund form."

    r = await client.patch(f"{URL}/{fid}", json={"category": None}, headers=user.headers)
    assert r.status_code == 200 and r.json()["category"] is None
    r = await client.get(f"{URL}/{fid}", headers=user.headers)
    assert r.json()["category"] is None and r.json()["status"] == "draft"


async def test_pagination_and_filters(client: httpx.AsyncClient, user: AuthedUser) -> None:
    made = [
        await make(client, user, "What are your opening hours?", category="store"),
        await make(client, user, "Do you ship abroad?", category="shipping"),
        await make(client, user, "Can I pay by card?", category="billing", status="draft"),
        await make(client, user, "Wie kann ich bezahlen?", category="billing", language="de"),
        await make(client, user, "Old returns policy?", status="archived"),
    ]
    newest_first = [f["id"] for f in reversed(made)]

    seen: list[str] = []
    for page in (1, 2, 3):
        r = await client.get(URL, params={"page": page, "limit": 2}, headers=user.headers)
        assert r.status_code == 200
        body = r.json()
        assert body["total"] == 5 and body["pages"] == 3
        assert body["page"] == page and body["limit"] == 2
        seen += [f["id"] for f in body["items"]]
    assert seen == newest_first

    async def ids(**params: str) -> set[str]:
        r = await client.get(URL, params=params, headers=user.headers)
        assert r.status_code == 200, r.text
        return {f["id"] for f in r.json()["items"]}

    assert await ids(status="draft") == {made[2]["id"]}
    assert await ids(status="archived") == {made[4]["id"]}
    assert await ids(status="active") == {made[0]["id"], made[1]["id"], made[3]["id"]}
    assert await ids(category="billing") == {made[2]["id"], made[3]["id"]}
    assert await ids(language="de") == {made[3]["id"]}
    assert await ids(category="billing", status="active") == {made[3]["id"]}
    assert await ids(category="nothing") == set()
    r = await client.get(URL, params={"status": "deleted"}, headers=user.headers)
    assert r.status_code == 422


async def test_other_users_faq_is_404(
    ctx: AppCtx, client: httpx.AsyncClient, users: UserFactory
) -> None:
    alice, bob = await users.create(), await users.create()
    faq = await make(client, alice, REFUND)
    url = f"{URL}/{faq['id']}"
    assert (await client.get(url, headers=bob.headers)).status_code == 404
    r = await client.put(url, json={"answer": "hijacked"}, headers=bob.headers)
    assert r.status_code == 404
    r = await client.patch(url, json={"answer": "hijacked"}, headers=bob.headers)
    assert r.status_code == 404
    assert (await client.delete(url, headers=bob.headers)).status_code == 404
    assert (await client.get(URL, headers=bob.headers)).json()["total"] == 0
    assert await search(client, bob, MONEY_BACK, min_score=-1) == []
    assert await service(ctx).best_match(bob.id, MONEY_BACK, 0.0) is None
    # Still intact for its owner.
    r = await client.get(url, headers=alice.headers)
    assert r.status_code == 200 and r.json()["answer"] == faq["answer"]
    assert [m["id"] for m in await search(client, alice, MONEY_BACK)] == [faq["id"]]


async def test_service_key_acts_for_a_user(
    client: httpx.AsyncClient, admin_key: str, user: AuthedUser, users: UserFactory
) -> None:
    h = {"Authorization": f"Bearer {admin_key}"}
    r = await client.post(
        URL, json={"question": REFUND, "answer": "Yes.", "user_id": user.id}, headers=h
    )
    assert r.status_code == 201, r.text
    assert r.json()["user_id"] == user.id
    r = await client.get(URL, params={"user_id": user.id}, headers=h)
    assert r.json()["total"] == 1
    assert (await client.get(URL, headers=user.headers)).json()["total"] == 1
    other = await users.create()
    r = await client.get(URL, params={"user_id": other.id}, headers=user.headers)
    assert r.status_code == 403


async def test_search_ranks_the_closest_question_first(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    refund = await make(client, user, REFUND)
    shipping = await make(client, user, SHIPPING)
    password = await make(client, user, PASSWORD)
    results = await search(client, user, MONEY_BACK, min_score=-1, limit=10)
    assert results[0]["id"] == refund["id"]
    assert {m["id"] for m in results} == {refund["id"], shipping["id"], password["id"]}
    scores = [m["score"] for m in results]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 0.5 and scores[0] - scores[1] > 0.15
    assert results[0]["answer"] == refund["answer"]

    assert len(await search(client, user, MONEY_BACK, min_score=-1, limit=1)) == 1
    # A high floor keeps only the refund FAQ.
    assert [m["id"] for m in await search(client, user, MONEY_BACK, min_score=0.5)] == [
        refund["id"]
    ]


async def test_search_excludes_draft_and_archived(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    draft = await make(client, user, REFUND, status="draft")
    archived = await make(client, user, "I want a refund for my order", status="archived")
    shipping = await make(client, user, SHIPPING)
    results = await search(client, user, MONEY_BACK, min_score=-1)
    assert [m["id"] for m in results] == [shipping["id"]]

    r = await client.patch(f"{URL}/{draft['id']}", json={"status": "active"}, headers=user.headers)
    assert r.status_code == 200
    results = await search(client, user, MONEY_BACK, min_score=-1)
    assert [m["id"] for m in results] == [draft["id"], shipping["id"]]
    assert archived["id"] not in {m["id"] for m in results}


async def test_updating_the_question_reembeds_it(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    faq = await make(client, user, SHIPPING, answer="Refunds take five days.")
    password = await make(client, user, PASSWORD)
    before = await search(client, user, MONEY_BACK, min_score=-1)
    assert before[0]["id"] == password["id"]

    r = await client.put(f"{URL}/{faq['id']}", json={"question": REFUND}, headers=user.headers)
    assert r.status_code == 200 and r.json()["question"] == REFUND
    after = await search(client, user, MONEY_BACK, min_score=-1)
    assert after[0]["id"] == faq["id"]
    assert after[0]["score"] > 0.5 > before[1]["score"]
    assert [m["id"] for m in await search(client, user, "shipping time", min_score=0.5)] == []


async def test_best_match_answers_and_counts_hits(
    ctx: AppCtx, client: httpx.AsyncClient, user: AuthedUser
) -> None:
    refund = await make(client, user, REFUND)
    await make(client, user, SHIPPING)
    await make(client, user, PASSWORD)
    faqs = service(ctx)

    found = await faqs.best_match(user.id, MONEY_BACK, 0.5)
    assert found is not None
    faq, score = found
    assert faq.id == refund["id"] and score >= 0.5 and faq.hits == 1
    found = await faqs.best_match(user.id, MONEY_BACK, 0.5)
    assert found is not None and found[0].hits == 2
    r = await client.get(f"{URL}/{refund['id']}", headers=user.headers)
    assert r.json()["hits"] == 2

    assert await faqs.best_match(user.id, "What is the capital of France?", 0.5) is None
    assert await faqs.best_match(user.id, "   ", 0.0) is None
    # Drafts never answer.
    await client.patch(f"{URL}/{refund['id']}", json={"status": "draft"}, headers=user.headers)
    found = await faqs.best_match(user.id, MONEY_BACK, 0.5)
    assert found is None
    r = await client.get(f"{URL}/{refund['id']}", headers=user.headers)
    assert r.json()["hits"] == 2


async def test_vectors_of_another_model_are_reembedded(
    ctx: AppCtx, client: httpx.AsyncClient, user: AuthedUser
) -> None:
    refund = await make(client, user, REFUND)
    await make(client, user, SHIPPING)
    c = ctx.app.state.container
    async with c.sessions() as db:
        await db.execute(
            update(Faq)
            .where(Faq.id == refund["id"])
            .values(embedding=b"\0" * 32, embedding_model="old-model")
        )
        await db.commit()
    results = await search(client, user, MONEY_BACK, min_score=-1)
    assert results[0]["id"] == refund["id"]
    async with c.sessions() as db:
        row = (await db.execute(select(Faq).where(Faq.id == refund["id"]))).scalar_one()
        assert row.embedding_model == c.docs.embedder.name
        assert len(row.embedding) == c.docs.embedder.dimension * 4


async def test_owner_cap_is_a_conflict(ctx: AppCtx, user: AuthedUser) -> None:
    c = ctx.app.state.container
    faqs = FaqService(c.docs.embedder, c.sessions, max_per_owner=1)
    async with c.sessions() as db:
        await faqs.create(db, user.id, FaqCreate(question=REFUND, answer="Yes."))
        with pytest.raises(Conflict):
            await faqs.create(db, user.id, FaqCreate(question=SHIPPING, answer="Soon."))


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"question": REFUND},
        {"answer": "Yes."},
        {"question": "ab", "answer": "Yes."},
        {"question": "     ", "answer": "Yes."},
        {"question": "q" * 1001, "answer": "Yes."},
        {"question": REFUND, "answer": ""},
        {"question": REFUND, "answer": "   "},
        {"question": REFUND, "answer": "a" * 10_001},
        {"question": REFUND, "answer": "Yes.", "tags": [f"t{i}" for i in range(21)]},
        {"question": REFUND, "answer": "Yes.", "tags": ["x" * 51]},
        {"question": REFUND, "answer": "Yes.", "tags": [""]},
        {"question": REFUND, "answer": "Yes.", "status": "live"},
        {"question": REFUND, "answer": "Yes.", "language": "english!"},
        {"question": REFUND, "answer": "Yes.", "category": ""},
    ],
)
async def test_create_validation_is_422(
    client: httpx.AsyncClient, user: AuthedUser, payload: dict[str, Any]
) -> None:
    r = await client.post(URL, json=payload, headers=user.headers)
    assert r.status_code == 422, payload
    assert r.json()["error"]["code"] == "validation_error"


async def test_update_and_search_validation_is_422(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    faq = await make(client, user, REFUND)
    url = f"{URL}/{faq['id']}"
    for payload in (
        {"question": None},
        {"answer": None},
        {"tags": None},
        {"status": "gone"},
        {"question": "hi"},
        {"answer": "a" * 10_001},
    ):
        r = await client.patch(url, json=payload, headers=user.headers)
        assert r.status_code == 422, payload
        r = await client.put(url, json=payload, headers=user.headers)
        assert r.status_code == 422, payload
    for params in (
        {},
        {"q": ""},
        {"q": "   "},
        {"q": "x" * 1001},
        {"q": "refund", "limit": 0},
        {"q": "refund", "limit": 51},
        {"q": "refund", "min_score": 2},
    ):
        r = await client.get(f"{URL}/search", params=params, headers=user.headers)
        assert r.status_code == 422, params
    r = await client.get(url, headers=user.headers)
    assert r.json()["question"] == REFUND and r.json()["answer"] == faq["answer"]


async def test_requires_authentication(client: httpx.AsyncClient) -> None:
    assert (await client.get(URL)).status_code == 401
    assert (await client.get(f"{URL}/search", params={"q": "refund"})).status_code == 401
