"""Admin analytics: access, dashboard deltas, per-user figures, conversation rankings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from botgpt.llm.errors import ProviderBadResponse
from botgpt.llm.fake import FakeProvider
from tests.conftest import AuthedUser, ConversationFactory, UserFactory

BASE = "/api/v1/analytics"


def _admin(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


async def _get(client: httpx.AsyncClient, path: str, key: str, **params: Any) -> dict[str, Any]:
    r = await client.get(f"{BASE}{path}", headers=_admin(key), params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def _fail_next_reply(
    client: httpx.AsyncClient, fake: FakeProvider, owner: AuthedUser, cid: str
) -> None:
    fake.enqueue(ProviderBadResponse("garbage"))  # not retryable: one failed reply
    r = await client.post(
        f"/api/v1/conversations/{cid}/messages", json={"content": "again?"}, headers=owner.headers
    )
    assert r.status_code == 502, r.text
    fake.queue.clear()


async def _usage(client: httpx.AsyncClient, owner: AuthedUser, cid: str) -> dict[str, Any]:
    """Tokens and cost summed over a conversation's messages, as GET conversation shows them."""
    r = await client.get(f"/api/v1/conversations/{cid}", headers=owner.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    msgs = body["messages"]
    prompt = sum((m["usage"] or {}).get("prompt_tokens", 0) for m in msgs)
    completion = sum((m["usage"] or {}).get("completion_tokens", 0) for m in msgs)
    assert body["usage"]["total_tokens"] == prompt + completion
    return {
        "prompt": prompt,
        "completion": completion,
        "cost": sum(m["cost_usd"] or 0.0 for m in msgs),
        "models": {(m["provider"], m["model"]) for m in msgs if m["role"] == "assistant"},
        "total": body["usage"]["total_tokens"],
    }


def _today(daily: list[dict[str, Any]]) -> dict[str, Any]:
    today = datetime.now(UTC).date().isoformat()
    return next(d for d in daily if d["date"] == today)


async def test_analytics_are_admin_only(
    client: httpx.AsyncClient, user: AuthedUser, admin_key: str
) -> None:
    for path in ("/dashboard", f"/users/{user.id}", f"/user/{user.id}", "/conversations"):
        r = await client.get(f"{BASE}{path}", headers=user.headers)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden"
        assert (await client.get(f"{BASE}{path}")).status_code == 401
        assert (await client.get(f"{BASE}{path}", headers=_admin(admin_key))).status_code == 200


async def test_dashboard_counts_new_activity(
    client: httpx.AsyncClient,
    users: UserFactory,
    conversations: ConversationFactory,
    fake: FakeProvider,
    admin_key: str,
) -> None:
    before = await _get(client, "/dashboard", admin_key)
    owner = await users.create()
    cids = [
        str((await conversations.create(owner, f"Question {i}"))["conversation_id"])
        for i in range(2)
    ]
    await _fail_next_reply(client, fake, owner, cids[0])
    after = await _get(client, "/dashboard", admin_key)

    assert after["users"]["new"] - before["users"]["new"] == 1
    assert after["users"]["active"] - before["users"]["active"] == 1
    assert after["users"]["total"] - before["users"]["total"] == 1
    assert after["conversations"]["new"] - before["conversations"]["new"] == 2
    assert (
        after["conversations"]["by_mode"]["open"]
        - before["conversations"]["by_mode"].get("open", 0)
        == 2
    )
    delta = {k: after["messages"][k] - before["messages"][k] for k in after["messages"]}
    assert delta == {"user_messages": 3, "replies": 3, "complete": 2, "failed": 1, "cancelled": 0}
    m = after["messages"]
    assert after["error_rate"] == m["failed"] / (m["complete"] + m["failed"])
    assert after["error_rate"] > 0

    usages = [await _usage(client, owner, cid) for cid in cids]
    prompt = sum(u["prompt"] for u in usages)
    completion = sum(u["completion"] for u in usages)
    tokens_delta = {k: after["tokens"][k] - before["tokens"][k] for k in after["tokens"]}
    assert tokens_delta == {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    cost = sum(u["cost"] for u in usages)
    assert abs(after["cost_usd"] - before["cost_usd"] - cost) < 1e-9

    assert after["latency"]["avg_ms"] is not None
    assert after["latency"]["p95_ms"] is not None
    assert after["latency"]["p95_ms"] >= 0

    (provider, model), *_ = set().union(*(u["models"] for u in usages))
    row = next(r for r in after["models"] if (r["provider"], r["model"]) == (provider, model))
    old = next(
        (r for r in before["models"] if (r["provider"], r["model"]) == (provider, model)),
        {"replies": 0},
    )
    assert model == fake.model
    assert row["replies"] - old["replies"] == 3

    today_before, today_after = _today(before["daily"]), _today(after["daily"])
    assert today_after["conversations"] - today_before["conversations"] == 2
    assert today_after["replies"] - today_before["replies"] == 3
    assert today_after["tokens"] - today_before["tokens"] == prompt + completion
    assert len(after["daily"]) in (30, 31)


async def test_user_analytics_match_their_conversations(
    client: httpx.AsyncClient,
    users: UserFactory,
    conversations: ConversationFactory,
    fake: FakeProvider,
    admin_key: str,
) -> None:
    owner = await users.create()
    empty = await _get(client, f"/users/{owner.id}", admin_key)
    assert empty["conversations"] == 0 and empty["last_activity_at"] is None
    cids = [str((await conversations.create(owner))["conversation_id"]) for _ in range(2)]
    await _fail_next_reply(client, fake, owner, cids[1])

    body = await _get(client, f"/users/{owner.id}", admin_key)
    assert body == await _get(client, f"/user/{owner.id}", admin_key) | {"period": body["period"]}
    usages = [await _usage(client, owner, cid) for cid in cids]
    assert body["user_id"] == owner.id and body["email"] == owner.email
    assert body["conversations"] == body["conversations_total"] == 2
    assert (body["user_messages"], body["replies"], body["failed_replies"]) == (3, 3, 1)
    assert body["messages"] == 6
    assert body["tokens"]["total_tokens"] == sum(u["total"] for u in usages)
    assert body["tokens"]["prompt_tokens"] == sum(u["prompt"] for u in usages)
    assert abs(body["cost_usd"] - sum(u["cost"] for u in usages)) < 1e-9
    assert body["last_activity_at"] is not None
    today = _today(body["daily"])
    assert (today["conversations"], today["replies"]) == (2, 3)
    assert sum(d["replies"] for d in body["daily"]) == 3

    r = await client.get(f"{BASE}/users/no-such-user", headers=_admin(admin_key))
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "not_found"


async def test_period_is_validated(client: httpx.AsyncClient, admin_key: str) -> None:
    now = datetime.now(UTC)
    bad = [
        {"since": now.isoformat(), "until": now.isoformat()},
        {"since": now.isoformat(), "until": (now - timedelta(days=1)).isoformat()},
        {"since": (now - timedelta(days=400)).isoformat()},
        {"since": "yesterday"},
    ]
    for params in bad:
        for path in ("/dashboard", "/conversations"):
            r = await client.get(f"{BASE}{path}", headers=_admin(admin_key), params=params)
            assert r.status_code == 422, (params, r.text)
    ok = {"since": (now - timedelta(days=366)).isoformat(), "until": now.isoformat()}
    body = await _get(client, "/dashboard", admin_key, **ok)
    assert len(body["daily"]) == 367
    for limit in (0, 101):
        r = await client.get(
            f"{BASE}/conversations", headers=_admin(admin_key), params={"limit": limit}
        )
        assert r.status_code == 422, r.text


async def test_conversation_analytics_rank_by_tokens(
    client: httpx.AsyncClient,
    users: UserFactory,
    conversations: ConversationFactory,
    fake: FakeProvider,
    admin_key: str,
) -> None:
    owner = await users.create()
    since = datetime.now(UTC).isoformat()  # after every earlier test's data
    made = []
    for words in (5, 200, 50):
        conv = await conversations.create(owner, " ".join(["word"] * words))
        made.append(str(conv["conversation_id"]))
    await _fail_next_reply(client, fake, owner, made[2])
    totals = {cid: (await _usage(client, owner, cid))["total"] for cid in made}

    body = await _get(client, "/conversations", admin_key, since=since)
    assert body["count"] == 3
    assert body["by_mode"] == {"open": 3}
    assert body["max_messages"] == 4
    assert body["avg_messages"] == (2 + 2 + 4) / 3
    assert body["avg_turns"] == 4 / 3
    assert body["failed_share"] == 1 / 3
    ranked = sorted(made, key=lambda c: totals[c], reverse=True)
    assert [t["id"] for t in body["top"]] == ranked
    assert [t["tokens"] for t in body["top"]] == sorted(totals.values(), reverse=True)
    assert all(t["user_id"] == owner.id for t in body["top"])

    top2 = await _get(client, "/conversations", admin_key, since=since, limit=2)
    assert [t["id"] for t in top2["top"]] == ranked[:2]
