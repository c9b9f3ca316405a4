"""Browser tests: a real uvicorn server on 127.0.0.1, host pages on other ports, and Debian's
Chromium driven by Playwright (skipped, with the reason, where /usr/bin/chromium is missing)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import AppCtx, serve_app
from tests.documents.conftest import docs, jobs_running  # noqa: F401  (fixtures)

CHROMIUM = os.environ.get("BOTGPT_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Every wait in these tests is bounded: a slow shared machine fails a test, it never hangs it.
TIMEOUT_MS = 20_000

pw_api = pytest.importorskip("playwright.async_api")


@pytest.fixture
async def live(ctx: AppCtx) -> AsyncIterator[str]:
    """The test app served by uvicorn on 127.0.0.1; yields its base URL."""
    async with serve_app(ctx.app) as port:
        yield f"http://127.0.0.1:{port}"


@dataclass
class HostSite:
    """A tiny static web server on its own port: another origin than BOT GPT's."""

    html: str
    origin: str = ""
    server: asyncio.Server | None = field(default=None, repr=False)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            body = self.html.encode()
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        finally:
            writer.close()

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.origin = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        """Stop listening."""
        if self.server is not None:
            self.server.close()


@pytest.fixture
async def host_sites() -> AsyncIterator[Callable[[str], Awaitable[HostSite]]]:
    """Starts host sites serving given HTML; all are stopped after the test."""
    started: list[HostSite] = []

    async def make(html: str) -> HostSite:
        site = HostSite(html)
        await site.start()
        started.append(site)
        return site

    yield make
    for site in started:
        await site.stop()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[object]:
    """Headless Chromium (Debian's), shared by the session's browser tests."""
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240  (once per session)
        pytest.skip(f"{CHROMIUM} is missing: run scripts/install_browser.sh")
    async with pw_api.async_playwright() as p:
        chromium = await p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        await chromium.close()


@dataclass
class Tab:
    """A page in a fresh browser context, with what it showed in dialogs and the console."""

    page: pw_api.Page
    dialogs: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)


@pytest.fixture
async def open_tab(browser: pw_api.Browser) -> AsyncIterator[Callable[..., Awaitable[Tab]]]:
    """Opens pages in fresh contexts; any dialog (alert, confirm) is recorded and dismissed."""
    contexts: list[pw_api.BrowserContext] = []

    async def open_(url: str, width: int = 1280, height: int = 800, dark: bool = False) -> Tab:
        context = await browser.new_context(
            viewport={"width": width, "height": height}, color_scheme="dark" if dark else "light"
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = await context.new_page()
        tab = Tab(page)

        async def on_dialog(dialog: pw_api.Dialog) -> None:
            tab.dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("console", lambda msg: tab.console.append(msg.text))
        await page.goto(url)
        return tab

    yield open_
    for context in contexts:
        await context.close()


async def shot(page: pw_api.Page, name: str) -> None:
    """Save a screenshot under docs/screenshots/ (one backend is enough)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / name))


async def serious_violations(page: pw_api.Page) -> list[str]:
    """axe-core's serious and critical accessibility violations on the page."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    return [
        f"{v['id']}: {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]
