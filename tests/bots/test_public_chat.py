"""The public chat of a bot: sessions, isolation, limits, CORS, signed visitors, feedback,
insight for the owner and bot webhooks' inputs; on SQLite and PostgreSQL with the fake model."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from botgpt.bots.public import visitor_signature
from botgpt.llm.fake import FakeProvider
from tests.conftest import AppCtx, AuthedUser, UserFactory

SITE = "https://shop.example.com"


async def make_bot(client: httpx.AsyncClient, owner: AuthedUser, **fields: Any) -> dict[str, Any]:
    body = {"name": "Shop helper", "system_prompt": "You are the Shop helper bot.", **fields}
    r = await client.post("/api/v1/bots", json=body, headers=owner.headers)
    assert r.status_code == 201, r.text
    bot: dict[str, Any] = r.json()
    return bot


async def say(
    client: httpx.AsyncClient, bot_id: str, text: str, path: str = "/api/v1/chat", **extra: Any
) -> httpx.Response:
    return await client.post(f"{path}/{bot_id}", json={"message": text, **extra})


async def test_sessions_are_issued_kept_isolated_and_cleared(
    client: httpx.AsyncClient, user: AuthedUser, fake: FakeProvider
) -> None:
    bot = await make_bot(client, user, starters=["Where is my order?"], welcome_message="Hi!")
    r = await say(client, bot["id"], "Hello bot", path="/api/chat")  # seed 003's path
    assert r.status_code == 200, r.text
    first = r.json()
    session = first["session_id"]
    assert uuid.UUID(session) and r.headers["x-session-id"] == session
    assert first["response"] == "You said: Hello bot"
    assert first["suggested_questions"] == ["Where is my order?"]
    # The bot's persona and version reach the model and the stored reply.
    assert fake.requests[-1].messages[0].content == "You are the Shop helper bot."
    r = await say(client, bot["id"], "Second question", session_id=session)
    assert r.json()["session_id"] == session and r.json()["suggested_questions"] == []
    # The history of the session is what the model saw, and what a reloaded page shows.
    assert [m.content for m in fake.requests[-1].messages[1:]] == [
        "Hello bot",
        "You said: Hello bot",
        "Second question",
    ]
    history = (await client.get(f"/api/v1/chat/{bot['id']}/session/{session}")).json()
    assert [m["content"] for m in history["messages"]] == [
        "Hello bot",
        "You said: Hello bot",
        "Second question",
        "You said: Second question",
    ]
    assert history["messages"][1]["bot_version"] == 1
    assert history["messages"][1]["context_manifest"] is None  # nothing internal leaks
    # Another session sees nothing of it.
    other = (await say(client, bot["id"], "Unrelated")).json()
    assert other["session_id"] != session
    assert [m.content for m in fake.requests[-1].messages[1:]] == ["Unrelated"]
    # The owner sees the visitor's conversation.
    mine = (await client.get("/api/v1/conversations", headers=user.headers)).json()
    assert first["conversation_id"] in {c["id"] for c in mine["items"]}
    # Clearing forgets it (seed path).
    assert (await client.delete(f"/api/chat/{bot['id']}/session/{session}")).status_code == 204
    history = (await client.get(f"/api/v1/chat/{bot['id']}/session/{session}")).json()
    assert history["messages"] == [] and history["conversation_id"] is None


async def test_config_shows_only_the_public_face(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    bot = await make_bot(
        client, user, api_key="sk-secret-9999", welcome_message="Welcome!", starters=["A?"]
    )
    r = await client.get(f"/api/v1/chat/{bot['id']}/config")
    assert r.status_code == 200
    assert set(r.json()) == {"id", "name", "welcome_message", "starters", "widget"}
    assert "sk-secret" not in r.text and "Shop helper bot" not in r.text


async def test_inactive_or_unknown_bot_is_404(client: httpx.AsyncClient, user: AuthedUser) -> None:
    bot = await make_bot(client, user)
    await client.patch(f"/api/v1/bots/{bot['id']}", json={"active": False}, headers=user.headers)
    assert (await say(client, bot["id"], "hello")).status_code == 404
    assert (await client.get(f"/api/v1/chat/{bot['id']}/config")).status_code == 404
    assert (await say(client, "no-such-bot", "hello")).status_code == 404


async def test_session_cap_is_429_with_retry_after(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    bot = await make_bot(client, user, session_message_cap=2)
    session = str(uuid.uuid4())
    for _ in range(2):
        assert (await say(client, bot["id"], "hi", session_id=session)).status_code == 200
    r = await say(client, bot["id"], "hi", session_id=session)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    # Another session of the same bot still talks; nothing of the refused turn was stored.
    assert (await say(client, bot["id"], "hi")).status_code == 200
    history = (await client.get(f"/api/v1/chat/{bot['id']}/session/{session}")).json()
    assert len(history["messages"]) == 4
    assert (await say(client, bot["id"], "x" * 4001)).status_code == 422


async def test_cors_follows_the_bots_allowed_origins(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    bot = await make_bot(client, user, allowed_origins=[SITE])
    url = f"/api/v1/chat/{bot['id']}"
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    ok = await client.options(url, headers={"Origin": SITE, **preflight})
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == SITE
    assert "content-type" in ok.headers["access-control-allow-headers"]
    bad = await client.options(url, headers={"Origin": "https://evil.example", **preflight})
    assert bad.status_code == 403 and "access-control-allow-origin" not in bad.headers
    r = await client.post(url, json={"message": "hi"}, headers={"Origin": SITE})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == SITE
    r = await client.post(url, json={"message": "hi"}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "origin_not_allowed"
    # BOT GPT's own chat page (same host) and server-side clients (no Origin) are served.
    r = await client.post(url, json={"message": "hi"}, headers={"Origin": "http://test"})
    assert r.status_code == 200
    # A bot with no allowed origins refuses every other website.
    closed = await make_bot(client, user)
    r = await client.post(
        f"/api/v1/chat/{closed['id']}", json={"message": "hi"}, headers={"Origin": SITE}
    )
    assert r.status_code == 403


async def test_signed_visitor_keeps_history_across_devices_and_forgery_is_refused(
    client: httpx.AsyncClient, user: AuthedUser, fake: FakeProvider
) -> None:
    bot = await make_bot(client, user)
    token = visitor_signature(bot["signing_secret"], "customer-42")
    first = await say(
        client, bot["id"], "I am on my phone", user_id="customer-42", user_token=token
    )
    assert first.status_code == 200
    # Another device: no session id, the same signed identity: the same conversation.
    again = await say(
        client, bot["id"], "Now on my laptop", user_id="customer-42", user_token=token
    )
    assert again.json()["session_id"] == first.json()["session_id"]
    assert "I am on my phone" in [m.content for m in fake.requests[-1].messages]
    forged = await say(client, bot["id"], "hi", user_id="customer-43", user_token=token)
    assert forged.status_code == 401
    half = await say(client, bot["id"], "hi", user_id="customer-42")
    assert half.status_code == 401


async def test_feedback_unanswered_and_bot_analytics(
    client: httpx.AsyncClient, user: AuthedUser, users: UserFactory, fake: FakeProvider
) -> None:
    bot = await make_bot(client, user)
    one = (await say(client, bot["id"], "How do I return a kettle?")).json()
    two = (await say(client, bot["id"], "Do you ship to Mars?")).json()
    url = f"/api/v1/chat/{bot['id']}/messages"
    r = await client.post(
        f"{url}/{one['message_id']}/feedback",
        json={"session_id": one["session_id"], "rating": "up"},
    )
    assert r.status_code == 200 and r.json()["rating"] == "up"
    r = await client.post(
        f"{url}/{two['message_id']}/feedback",
        json={"session_id": two["session_id"], "rating": "down", "comment": "Useless"},
    )
    assert r.status_code == 200
    # Changing one's mind replaces the rating; another session cannot rate this reply.
    await client.post(
        f"{url}/{two['message_id']}/feedback",
        json={"session_id": two["session_id"], "rating": "down", "comment": "Still useless"},
    )
    r = await client.post(
        f"{url}/{two['message_id']}/feedback",
        json={"session_id": one["session_id"], "rating": "up"},
    )
    assert r.status_code == 404
    unanswered = (
        await client.get(f"/api/v1/bots/{bot['id']}/unanswered", headers=user.headers)
    ).json()
    assert [(i["reason"], i["question"], i["comment"]) for i in unanswered["items"]] == [
        ("thumbs_down", "Do you ship to Mars?", "Still useless")
    ]
    stats = (await client.get(f"/api/v1/analytics/bots/{bot['id']}", headers=user.headers)).json()
    assert stats["sessions"] == 2 and stats["user_messages"] == 2 and stats["replies"] == 2
    assert (stats["feedback_up"], stats["feedback_down"]) == (1, 1)
    assert stats["faq_hit_rate"] == 0 and stats["not_found_rate"] == 0
    assert stats["latency_p50_ms"] is not None and sum(d["sessions"] for d in stats["per_day"]) == 2
    # Another user sees neither.
    other = await users.create()
    assert (
        await client.get(f"/api/v1/analytics/bots/{bot['id']}", headers=other.headers)
    ).status_code == 404
    assert (
        await client.get(f"/api/v1/bots/{bot['id']}/unanswered", headers=other.headers)
    ).status_code == 404


async def test_faq_first_answers_without_the_model(
    client: httpx.AsyncClient, user: AuthedUser, fake: FakeProvider, ctx: AppCtx
) -> None:
    r = await client.post(
        "/api/v1/faqs",
        json={
            "question": "What are your opening hours?",
            "answer": "We open 9 to 5, Monday to Friday.",
        },
        headers=user.headers,
    )
    faq = r.json()
    bot = await make_bot(client, user, faq_first=True, faq_threshold=0.7)
    calls = len(fake.requests)
    r = await say(client, bot["id"], "When are you open?")
    reply = r.json()
    assert reply["response"] == "We open 9 to 5, Monday to Friday." and reply["source"] == "faq"
    assert len(fake.requests) == calls  # no model call
    history = (await client.get(f"/api/v1/chat/{bot['id']}/session/{reply['session_id']}")).json()
    answer = history["messages"][1]
    assert answer["faq_id"] == faq["id"] and answer["usage"]["total_tokens"] == 0
    assert answer["model"] is None
    # A question the FAQs do not cover goes to the model.
    r = await say(client, bot["id"], "Tell me a joke about teapots", session_id=reply["session_id"])
    assert r.json()["source"] == "model" and len(fake.requests) == calls + 1
    hits = (await client.get(f"/api/v1/faqs/{faq['id']}", headers=user.headers)).json()["hits"]
    assert hits == 1
    stats = (await client.get(f"/api/v1/analytics/bots/{bot['id']}", headers=user.headers)).json()
    assert stats["faq_answers"] == 1 and stats["faq_hit_rate"] == 0.5


async def test_deleting_a_bot_deletes_its_conversations(
    client: httpx.AsyncClient, user: AuthedUser, ctx: AppCtx
) -> None:
    bot = await make_bot(client, user)
    reply = (await say(client, bot["id"], "hello")).json()
    assert (
        await client.delete(f"/api/v1/bots/{bot['id']}", headers=user.headers)
    ).status_code == 204
    r = await client.get(f"/api/v1/conversations/{reply['conversation_id']}", headers=user.headers)
    assert r.status_code == 404
    assert (await say(client, bot["id"], "hello")).status_code == 404


async def test_public_turn_streams_like_the_rest(
    client: httpx.AsyncClient, user: AuthedUser
) -> None:
    bot = await make_bot(client, user)
    r = await client.post(f"/api/v1/chat/{bot['id']}?stream=true", json={"message": "Stream me"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [line.split(": ", 1)[1] for line in r.text.splitlines() if line.startswith("event: ")]
    assert events[0] == "start" and events[-1] == "done" and "delta" in events
    assert r.headers["x-session-id"]


async def test_bot_events_reach_the_owners_webhooks(
    client: httpx.AsyncClient, user: AuthedUser, ctx: AppCtx
) -> None:
    import asyncio

    public = ctx.app.state.container.public_chat
    seen: list[tuple[str, str, dict[str, Any]]] = []
    saved = public.on_event
    public.on_event = lambda owner, event, data: seen.append((owner, event, data))
    try:
        bot = await make_bot(client, user)
        reply = (await say(client, bot["id"], "hello")).json()
        await client.post(
            f"/api/v1/chat/{bot['id']}?stream=true",
            json={"message": "again", "session_id": reply["session_id"]},
        )
        await client.post(
            f"/api/v1/chat/{bot['id']}/messages/{reply['message_id']}/feedback",
            json={"session_id": reply["session_id"], "rating": "up"},
        )
        for _ in range(100):  # the streamed reply's event follows its task
            if [e for _, e, _ in seen].count("bot.message_answered") == 2:
                break
            await asyncio.sleep(0.01)
    finally:
        public.on_event = saved
    # The streamed reply's event may come after the feedback's: order within each reply only.
    assert sorted(e for _, e, _ in seen) == sorted(
        [
            "bot.session_started",
            "bot.message_received",
            "bot.message_answered",
            "bot.message_received",
            "bot.message_answered",
            "bot.feedback",
        ]
    )
    assert [e for _, e, _ in seen][:3] == [
        "bot.session_started",
        "bot.message_received",
        "bot.message_answered",
    ]
    assert all(owner == user.id and data["bot_id"] == bot["id"] for owner, _, data in seen)
