"""The chat page in a real browser: it streams a cited reply, keeps the session across a reload,
stops a reply, keeps hostile markup inert, explains an unavailable bot, and passes axe-core."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from botgpt.llm.fake import FakeProvider, FakeReply
from tests.bots.test_public_chat import make_bot
from tests.conftest import AppCtx, AuthedUser
from tests.documents.conftest import Docs
from tests.documents.test_grounded import POLICY, cite_passage
from tests.web.conftest import Tab, serious_violations, shot

Opener = Callable[..., Awaitable[Tab]]


async def test_chat_streams_a_cited_reply_and_keeps_the_session_across_a_reload(
    client: httpx.AsyncClient,
    ctx: AppCtx,
    docs: Docs,
    user: AuthedUser,
    fake: FakeProvider,
    live: str,
    open_tab: Opener,
) -> None:
    doc = await docs.ingest(user, "policy.md", POLICY.encode(), "text/markdown")
    bot = await make_bot(
        client,
        user,
        name="Policy helper",
        document_ids=[doc["id"]],
        welcome_message="Hello! Ask me about **our policies**.",
        starters=["What is your refund policy?"],
        widget={"primary_color": "#0f766e"},
    )
    async with httpx.AsyncClient() as web:
        page_response = await web.get(f"{live}/chat/{bot['id']}")
    csp = page_response.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in csp and "unsafe-eval" not in csp
    assert "script-src 'self'" in csp and "x-frame-options" not in page_response.headers
    fake.enqueue(
        cite_passage("full refund within 30 days", "A **full refund** within 30 days [{n}].")
    )
    # Slow enough pieces that the reply is seen growing on screen before it completes.
    fake.default_chunk_delay = 0.05
    try:
        await _chat_and_reload(ctx, bot, live, open_tab)
    finally:
        fake.default_chunk_delay = 0.0


async def _chat_and_reload(
    ctx: AppCtx, bot: dict[str, object], live: str, open_tab: Opener
) -> None:
    tab = await open_tab(f"{live}/chat/{bot['id']}")
    page = tab.page
    await page.get_by_role("heading", name="Policy helper").wait_for()
    assert await page.title() == "Policy helper"
    await page.get_by_text("our policies").wait_for()
    await page.get_by_role("button", name="What is your refund policy?").click()
    reply = page.locator(".msg.bot").last
    await page.wait_for_function(
        "() => { const b = document.querySelectorAll('.msg.bot'); "
        "const t = b[b.length - 1].textContent; return t.length > 0 && !t.includes('30 days'); }"
    )  # part of the reply is on screen before the rest arrives
    await reply.locator(".tools").wait_for()
    assert await reply.locator(".state").count() == 0, await reply.inner_text()
    assert "full refund within 30 days" in (await reply.inner_text()).replace("\n", " ")
    assert await reply.locator("strong").inner_text() == "full refund"
    chip = reply.locator(".body .chip").first
    await chip.click()
    passage = reply.locator(".passage")
    assert "policy.md" in await passage.inner_text()
    assert "full refund within 30 days" in await passage.inner_text()
    await reply.get_by_role("button", name="Helpful", exact=True).click()
    await page.wait_for_selector("[data-rating=up][aria-pressed=true]")
    if ctx.backend == "sqlite":
        await shot(page, "chat-desktop.png")
    assert await serious_violations(page) == []

    await page.reload()
    await page.locator(".msg.bot .tools").wait_for()
    texts = await page.locator(".msg").all_inner_texts()
    assert texts[0] == "What is your refund policy?"
    assert "full refund within 30 days" in texts[1].replace("\n", " ")
    assert len(texts) == 2  # the history, not the welcome message again

    await page.get_by_role("button", name="New conversation").click()
    await page.get_by_text("our policies").wait_for()
    assert await page.locator(".msg.user").count() == 0
    assert tab.dialogs == []


async def test_phone_layout_keyboard_and_stop(
    client: httpx.AsyncClient,
    ctx: AppCtx,
    user: AuthedUser,
    fake: FakeProvider,
    live: str,
    open_tab: Opener,
) -> None:
    bot = await make_bot(client, user, welcome_message="Hi there.")
    fake.enqueue(FakeReply(text="word " * 200, chunk_size=5, chunk_delay=0.05))
    tab = await open_tab(f"{live}/chat/{bot['id']}", width=390, height=760, dark=True)
    page = tab.page
    await page.get_by_text("Hi there.").wait_for()
    # Keyboard alone: the message box has focus; Enter sends.
    await page.keyboard.type("Tell me a long story")
    await page.keyboard.press("Enter")
    stop = page.get_by_role("button", name="Stop")
    await stop.wait_for()
    await page.wait_for_function(
        "() => document.querySelector('.msg.bot:last-child .body').textContent.length > 0"
    )
    if ctx.backend == "sqlite":
        await shot(page, "chat-phone.png")
    await stop.click()
    await page.get_by_text("Reply stopped.").wait_for()
    assert await page.get_by_role("button", name="Retry").is_visible()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # no sideways scrolling on a phone
    fake.enqueue("Short answer.")
    await page.get_by_role("button", name="Retry").click()
    await page.get_by_text("Short answer.").wait_for()
    assert await serious_violations(page) == []  # the dark scheme is readable too


async def test_hostile_markup_in_messages_and_replies_stays_inert(
    client: httpx.AsyncClient, user: AuthedUser, fake: FakeProvider, live: str, open_tab: Opener
) -> None:
    bot = await make_bot(client, user)
    fake.enqueue(
        '<img src=x onerror="alert(1)"> and [click me](javascript:alert(2)) '
        "<script>alert(3)</script> [ok](https://example.com)"
    )
    tab = await open_tab(f"{live}/chat/{bot['id']}")
    page = tab.page
    await page.locator("#input").fill('<img src=x onerror="alert(4)"> [x](javascript:alert(5))')
    await page.get_by_role("button", name="Send").click()
    reply = page.locator(".msg.bot").last
    await reply.locator(".tools").wait_for()
    await page.wait_for_timeout(300)
    assert tab.dialogs == []
    assert await page.locator(".log img, .log script").count() == 0
    assert await page.locator(".log a[href^='javascript']").count() == 0
    assert await reply.locator("a[href='https://example.com']").count() == 1
    assert "<img src=x" in await reply.inner_text()  # shown as text


async def test_an_inactive_bot_and_a_limit_are_explained(
    client: httpx.AsyncClient, user: AuthedUser, live: str, open_tab: Opener
) -> None:
    bot = await make_bot(client, user, active=False)
    tab = await open_tab(f"{live}/chat/{bot['id']}")
    await tab.page.get_by_role("alert").wait_for()
    assert "not available" in await tab.page.get_by_role("alert").inner_text()
    assert not await tab.page.locator("#input").is_visible()

    capped = await make_bot(client, user, session_message_cap=1)
    tab = await open_tab(f"{live}/chat/{capped['id']}")
    page = tab.page
    for text in ("first", "second"):
        await page.locator("#input").fill(text)
        await page.get_by_role("button", name="Send").click()
        await page.locator(".msg.bot .tools, .msg.bot .state").last.wait_for()
    assert "message limit" in await page.locator(".msg.bot .state").last.inner_text()
