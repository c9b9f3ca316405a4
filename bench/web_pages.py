"""Bytes of a first visit to the chat page and of the widget launcher, and time to the first
reply token on screen in headless Chromium against the fake provider at 0 ms; prints JSON.

Serves the app in-process with uvicorn on 127.0.0.1 (SQLite in a temporary folder).

    python bench/web_pages.py [--turns 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import tempfile
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from playwright.async_api import async_playwright

from botgpt import migrate
from botgpt.config import Settings
from botgpt.llm.fake import FakeProvider
from botgpt.main import create_app

CHROMIUM = "/usr/bin/chromium"
# Time from the send (the form's submit) until the reply's first text is in the DOM.
MEASURE = """async () => {
  const log = document.getElementById('log');
  const before = document.querySelectorAll('.msg.bot').length;
  return await new Promise((resolve) => {
    let t0 = 0;
    const seen = new MutationObserver(() => {
      const bots = document.querySelectorAll('.msg.bot');
      const last = bots[bots.length - 1];
      if (bots.length > before && last.querySelector('.body').textContent.length > 0) {
        seen.disconnect();
        resolve(performance.now() - t0);
      }
    });
    seen.observe(log, { childList: true, subtree: true, characterData: true });
    document.getElementById('input').value = 'Hello there, how are you?';
    t0 = performance.now();
    document.getElementById('composer').requestSubmit();
  });
}"""


async def transferred(client: httpx.AsyncClient, url: str) -> int:
    """Bytes on the wire for one GET with gzip accepted: status line, headers and body."""
    async with client.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as r:
        body = 0
        async for chunk in r.aiter_raw():
            body += len(chunk)
        head = len(f"HTTP/1.1 {r.status_code} OK\r\n") + sum(
            len(k) + len(v) + 4 for k, v in r.headers.raw
        )
        return head + body + 2


async def main(turns: int) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="botgpt-web-bench-"))
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=data,
        database_url=f"sqlite+aiosqlite:///{data / 'bench.db'}",
        jwt_secret=secrets.token_urlsafe(40),
        llm_provider="fake",
        llm_titles=False,
        rate_limit_chat="100000/minute",
        rate_limit_auth="",
        log_json=False,
    )
    app = create_app(settings, provider=FakeProvider(), run_migrations=False)
    await migrate.upgrade(app.state.container.engine)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(1000):
        if server.started:
            break
        await asyncio.sleep(0.01)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        email, password = "bench@example.com", "correct horse battery"
        await api.post("/api/v1/auth/register", json={"email": email, "password": password})
        token = (
            await api.post("/api/v1/auth/login", json={"email": email, "password": password})
        ).json()["access_token"]
        bot = (
            await api.post(
                "/api/v1/bots",
                json={"name": "Bench bot", "welcome_message": "Hi!", "session_message_cap": 1000},
                headers={"Authorization": f"Bearer {token}"},
            )
        ).json()
        urls: list[str] = []
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox",
                    "--headless",
                    "--disable-gpu",
                    "--disable-background-networking",
                ],
            )
            page = await browser.new_page()
            page.on("request", lambda req: urls.append(req.url))
            await page.goto(f"{base}/chat/{bot['id']}")
            await page.get_by_text("Hi!").wait_for()
            first_visit = [u for u in urls if u.startswith(base)]
            waits = [await page.evaluate(MEASURE) for _ in range(turns)]
            await browser.close()
        chat_bytes = {u[len(base) :]: await transferred(api, u) for u in first_visit}
        widget_bytes = await transferred(api, f"{base}/widget.js")
    server.should_exit = True
    await task
    waits.sort()
    return {
        "chat_page_first_visit_bytes": sum(chat_bytes.values()),
        "chat_page_requests": chat_bytes,
        "widget_launcher_bytes_gzip": widget_bytes,
        "first_token_on_screen_ms": {
            "turns": turns,
            "p50": round(statistics.median(waits), 1),
            "p95": round(waits[int(0.95 * (len(waits) - 1))], 1),
            "max": round(waits[-1], 1),
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=20)
    print(json.dumps(asyncio.run(main(parser.parse_args().turns)), indent=2))
