"""Seed 004's FAQ data: categories (CRUD), priority order, view and helpful counters, the
`published` status; on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx

from tests.api.test_faqs import URL, make
from tests.conftest import AuthedUser, UserFactory

CATS = f"{URL}/categories"


async def test_category_crud_and_faqs_follow_it(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    r = await client.post(
        CATS, json={"name": "Billing", "description": "Money", "position": 2}, headers=user.headers
    )
    assert r.status_code == 201, r.text
    billing = r.json()
    assert billing["faq_count"] == 0 and billing["position"] == 2
    dup = await client.post(CATS, json={"name": "Billing"}, headers=user.headers)
    assert dup.status_code == 409
    # By id, and by a new name (created on the fly).
    a = await make(client, user, "How do I get a refund?", category_id=billing["id"])
    b = await make(client, user, "How long does shipping take?", category="Shipping")
    assert a["category"] == "Billing" and a["category_id"] == billing["id"]
    listed = (await client.get(CATS, headers=user.headers)).json()
    assert [(c["name"], c["faq_count"]) for c in listed["items"]] == [
        ("Shipping", 1),
        ("Billing", 1),
    ]
    assert listed["total"] == 2 and listed["pages"] == 1
    # Renaming carries to the FAQs; the name filter sees the new name.
    r = await client.patch(
        f"{CATS}/{billing['id']}", json={"name": "Payments"}, headers=user.headers
    )
    assert r.status_code == 200 and r.json()["name"] == "Payments"
    got = (await client.get(f"{URL}/{a['id']}", headers=user.headers)).json()
    assert got["category"] == "Payments"
    only = (await client.get(URL, params={"category": "Payments"}, headers=user.headers)).json()
    assert [f["id"] for f in only["items"]] == [a["id"]]
    # Deleting a category keeps its FAQs, uncategorised.
    shipping_id = b["category_id"]
    assert (await client.delete(f"{CATS}/{shipping_id}", headers=user.headers)).status_code == 204
    got = (await client.get(f"{URL}/{b['id']}", headers=user.headers)).json()
    assert got["category"] is None and got["category_id"] is None
    assert (await client.get(f"{CATS}/{shipping_id}", headers=user.headers)).status_code == 404


async def test_another_owners_category_is_404(
    client: httpx.AsyncClient, user: AuthedUser, users: UserFactory
) -> None:
    mine = (await client.post(CATS, json={"name": "Mine"}, headers=user.headers)).json()
    other = await users.create()
    for method in ("GET", "PATCH", "DELETE"):
        r = await client.request(
            method,
            f"{CATS}/{mine['id']}",
            json={"name": "X"} if method == "PATCH" else None,
            headers=other.headers,
        )
        assert r.status_code == 404, method
    r = await client.post(
        URL,
        json={"question": "Whose category is it?", "answer": "a", "category_id": mine["id"]},
        headers=other.headers,
    )
    assert r.status_code == 404


async def test_priority_orders_the_list_and_published_means_active(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    low = await make(client, user, "Where is the office?", status="published")
    high = await make(client, user, "How do I reset my password?", priority=10)
    assert low["status"] == "active"
    items = (await client.get(URL, headers=user.headers)).json()["items"]
    assert [f["id"] for f in items] == [high["id"], low["id"]]
    published = await client.get(URL, params={"status": "published"}, headers=user.headers)
    assert published.status_code == 200 and published.json()["total"] == 2
    bad = await client.post(
        URL, json={"question": "Too high?", "answer": "a", "priority": 5000}, headers=user.headers
    )
    assert bad.status_code == 422


async def test_view_and_helpful_counters(client: httpx.AsyncClient, user: AuthedUser) -> None:
    faq = await make(client, user, "Can I pay by invoice?")
    assert (faq["view_count"], faq["helpful_count"], faq["not_helpful_count"]) == (0, 0, 0)
    for _ in range(3):
        await client.get(f"{URL}/{faq['id']}", headers=user.headers)
    for helpful in (True, True, False):
        r = await client.post(
            f"{URL}/{faq['id']}/feedback", json={"helpful": helpful}, headers=user.headers
        )
        assert r.status_code == 200
    body = r.json()
    assert (body["view_count"], body["helpful_count"], body["not_helpful_count"]) == (3, 2, 1)
    bad = await client.post(
        f"{URL}/{faq['id']}/feedback", json={"helpful": "maybe"}, headers=user.headers
    )
    assert bad.status_code == 422
