"""The widget on another website: it opens the chat in a frame, chats, closes with Esc, and
is untouched by a hostile host stylesheet; on a website the bot does not allow, no launcher."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from botgpt.llm.fake import FakeProvider
from tests.bots.test_public_chat import make_bot
from tests.conftest import AppCtx, AuthedUser
from tests.web.conftest import HostSite, Tab, serious_violations, shot

HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Host shop</title>
<style>* {{ all: unset; font-size: 40px }} body {{ display: block; padding: 20px }}</style>
<script>window.__before = Object.getOwnPropertyNames(window);</script>
</head><body><h1>A shop that styles everything</h1><p>Products and prices.</p>
<script src="{live}/widget.js" data-bot-id="{bot}" async></script>
</body></html>"""
LAUNCHER = "botgpt-widget >> css=button"


async def test_widget_opens_chats_closes_and_resists_host_styles(
    client: httpx.AsyncClient,
    ctx: AppCtx,
    user: AuthedUser,
    fake: FakeProvider,
    live: str,
    host_sites: Callable[[str], Awaitable[HostSite]],
    open_tab: Callable[..., Awaitable[Tab]],
) -> None:
    bot = await make_bot(
        client, user, widget={"primary_color": "#b91c1c", "launcher_text": "Ask us"}
    )
    site = await host_sites(HOST_PAGE.format(live=live, bot=bot["id"]))
    r = await client.patch(
        f"/api/v1/bots/{bot['id']}", json={"allowed_origins": [site.origin]}, headers=user.headers
    )
    assert r.status_code == 200, r.text
    async with httpx.AsyncClient() as web:
        widget = await web.get(f"{live}/widget.js")
        csp = (await web.get(f"{live}/chat/{bot['id']}")).headers["content-security-policy"]
        again = await web.get(
            f"{live}/widget.js", headers={"If-None-Match": widget.headers["etag"]}
        )
    assert len(widget.content) < 8192 and "max-age=" in widget.headers["cache-control"]
    assert again.status_code == 304
    assert f"frame-ancestors 'self' {site.origin}" in csp

    tab = await open_tab(site.origin)
    page = tab.page
    launcher = page.locator("botgpt-widget button")
    await launcher.wait_for()
    style = await launcher.evaluate(
        "b => { const s = getComputedStyle(b); "
        "return [s.fontSize, s.backgroundColor, s.position, s.bottom, s.right]; }"
    )
    assert style == ["16px", "rgb(185, 28, 28)", "fixed", "20px", "20px"]
    assert await launcher.inner_text() == "Ask us"
    added = await page.evaluate(
        "Object.getOwnPropertyNames(window)"
        ".filter(k => !window.__before.includes(k) && k !== '__before')"
    )
    assert added == ["BotGPTWidget"]

    await launcher.click()
    frame = page.frame_locator("botgpt-widget iframe")
    await frame.locator("#input").wait_for()
    fake.enqueue("Hello from the **widget**.")
    await frame.locator("#input").fill("Hi from the shop")
    await frame.locator("#input").press("Enter")
    await frame.get_by_text("Hello from the").wait_for()
    if ctx.backend == "sqlite":
        await shot(page, "widget-open.png")
    chat_frame = next(f for f in page.frames if "/chat/" in f.url)
    assert await serious_violations(chat_frame) == []  # type: ignore[arg-type]

    await frame.locator("#input").press("Escape")
    await page.locator("botgpt-widget iframe").wait_for(state="hidden")
    focused = await page.evaluate(
        "document.querySelector('botgpt-widget').shadowRoot.activeElement?.textContent"
    )
    assert focused == "Ask us"
    assert await launcher.get_attribute("aria-expanded") == "false"
    assert tab.dialogs == []


async def test_widget_on_a_site_the_bot_does_not_allow_shows_no_launcher(
    client: httpx.AsyncClient,
    user: AuthedUser,
    live: str,
    host_sites: Callable[[str], Awaitable[HostSite]],
    open_tab: Callable[..., Awaitable[Tab]],
) -> None:
    bot = await make_bot(client, user, allowed_origins=["https://shop.example.com"])
    site = await host_sites(HOST_PAGE.format(live=live, bot=bot["id"]))
    tab = await open_tab(site.origin)
    page = tab.page
    await page.wait_for_function("() => window.BotGPTWidget !== undefined")
    for _ in range(100):
        if any("BOT GPT widget" in line for line in tab.console):
            break
        await page.wait_for_timeout(50)
    assert any("not in the bot's allowed origins" in line for line in tab.console), tab.console
    assert await page.locator("botgpt-widget").count() == 0
    async with httpx.AsyncClient() as web:
        refused = await web.post(
            f"{live}/api/v1/chat/{bot['id']}",
            json={"message": "hi"},
            headers={"Origin": site.origin},
        )
        csp = (await web.get(f"{live}/chat/{bot['id']}")).headers["content-security-policy"]
    assert refused.status_code == 403
    assert site.origin not in csp
