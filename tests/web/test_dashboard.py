"""The admin dashboard in a real browser: sign in (cookie-held refresh token, access token in
memory), upload a document and see it ready, create and edit a bot, restore a version, read the
analytics charts drawn from seeded visitor traffic, pass axe-core, and sign out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from tests.conftest import AppCtx, AuthedUser
from tests.documents.conftest import Docs
from tests.documents.test_grounded import POLICY
from tests.web.conftest import Tab, serious_violations, shot


async def test_sign_in_build_a_bot_read_its_analytics_and_sign_out(
    client: httpx.AsyncClient,
    ctx: AppCtx,
    docs: Docs,
    user: AuthedUser,
    live: str,
    open_tab: Callable[..., Awaitable[Tab]],
) -> None:
    tab = await open_tab(f"{live}/admin")
    page = tab.page
    await page.get_by_label("Email").fill(user.email)
    await page.get_by_label("Password").fill("wrong password")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_text("Wrong email or password.").wait_for()
    await page.get_by_label("Password").fill(user.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_text(user.email).wait_for()
    # Nothing readable by script holds a token: the refresh token is an httpOnly cookie.
    assert await page.evaluate("document.cookie") == ""
    assert await page.evaluate("localStorage.length + sessionStorage.length") == 0
    cookies = await page.context.cookies()
    assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [
        ("botgpt_refresh", True, "Strict")
    ]

    # A document uploaded through the page goes on to ready.
    await page.get_by_role("link", name="Documents").click()
    await page.locator("#files").set_input_files(
        files=[{"name": "policy.md", "mimeType": "text/markdown", "buffer": POLICY.encode()}]
    )
    await page.locator("td.doc-status", has_text="ready").wait_for()

    # A bot created with that document, then edited; its deployment codes are shown.
    await page.get_by_role("link", name="Bots").click()
    await page.get_by_role("link", name="Create a bot").click()
    await page.get_by_label("Name", exact=True).fill("Support bot")
    await page.get_by_label("System prompt").fill("You answer questions about our policies.")
    await page.get_by_label("policy.md (ready)").check()
    await page.get_by_role("button", name="Create bot").click()
    await page.get_by_role("heading", name="Support bot").wait_for()
    await page.get_by_text("data-bot-id").wait_for()
    await page.get_by_label("Welcome message").fill("Welcome to support!")
    await page.get_by_label("System prompt").fill("You are terse.")  # a versioned setting
    await page.get_by_role("button", name="Save").click()
    await page.get_by_text("v2 ").wait_for()
    bots = (await client.get("/api/v1/bots", headers=user.headers)).json()["items"]
    assert [(b["name"], b["welcome_message"], b["version"]) for b in bots] == [
        ("Support bot", "Welcome to support!", 2)
    ]
    bot = bots[0]
    assert len(bot["document_ids"]) == 1
    await page.frame_locator("iframe").get_by_text("Welcome to support!").wait_for()
    if ctx.backend == "sqlite":
        await page.evaluate("window.scrollTo(0, 0)")
        await shot(page, "dashboard-bot.png")
    assert await serious_violations(page) == []
    await page.get_by_role("button", name="Restore").first.click()
    await page.get_by_text("v3 ").wait_for()
    restored = (await client.get(f"/api/v1/bots/{bot['id']}", headers=user.headers)).json()
    assert restored["system_prompt"] == "You answer questions about our policies."

    # Visitor traffic, then the analytics page draws it.
    for i in range(3):
        r = await client.post(
            f"/api/v1/chat/{bot['id']}", json={"message": f"What is the refund policy? ({i})"}
        )
        assert r.status_code == 200, r.text
    await page.get_by_role("link", name="Analytics").click()
    await page.locator(".chart rect.bar").first.wait_for(state="attached")
    heights = await page.locator(".chart rect.bar").evaluate_all(
        "rects => rects.map(r => Number(r.getAttribute('height')))"
    )
    assert max(heights) > 0
    assert "3" in await page.locator(".card", has_text="Messages").inner_text()
    if ctx.backend == "sqlite":
        await shot(page, "dashboard-analytics.png")
    assert await serious_violations(page) == []

    # An uncovered question shows beside the FAQs and becomes one in a click.
    r = await client.post(
        f"/api/v1/chat/{bot['id']}", json={"message": "Who composed the Moonlight Sonata?"}
    )
    assert r.json()["source"] == "not_found"
    await page.get_by_role("link", name="FAQs").click()
    await page.get_by_role("button", name="Answer this as a FAQ").click()
    await page.locator(".split > div:nth-child(2) textarea").nth(1).fill("Beethoven.")
    await page.get_by_role("button", name="Add FAQ").nth(1).click()
    await page.get_by_text("Who composed the Moonlight Sonata? — active").wait_for()

    # Conversations: the visitor sessions, each with its messages, citations and manifest.
    await page.get_by_role("link", name="Conversations").click()
    await page.locator("tbody a").first.click()
    await page.get_by_text("Context manifest").first.wait_for()

    # A reload keeps the dashboard signed in (the cookie gives a new access token)...
    await page.reload()
    await page.get_by_text(user.email).wait_for()
    # ...and signing out revokes the session: a reload then finds no valid cookie.
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_role("button", name="Sign in").wait_for()
    await page.reload()
    await page.get_by_role("button", name="Sign in").wait_for()
    assert not await page.locator("#app").is_visible()
