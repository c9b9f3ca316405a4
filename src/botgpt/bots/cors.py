"""Per-bot CORS for the public chat: only a bot's allowed origins may call it from a browser.

A browser request carries `Origin`. For the public chat paths (`/api/chat/{bot_id}...`,
`/api/v1/chat/{bot_id}...`) this middleware answers preflights itself and, for an origin
that is neither BOT GPT's own (its chat page) nor in the bot's `allowed_origins`, refuses
the request before it reaches the app: no CORS grant and no turn. Requests without
`Origin` (server-side clients, curl) pass unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from botgpt.bots.directory import BotSnapshot

_PUBLIC = re.compile(r"^/api(?:/v1)?/chat/(?P<bot>[^/]+)(?:/.*)?$")
# Paths under /api/v1/chat/ that are not a bot's (the signed-in chat API).
_NOT_BOTS = {"send", "ws"}
ALLOW_METHODS = b"GET, POST, DELETE, OPTIONS"
ALLOW_HEADERS = {"content-type", "last-event-id", "idempotency-key", "x-request-id"}

Lookup = Callable[[str], Awaitable[BotSnapshot | None]]


def public_bot_id(path: str) -> str | None:
    """The bot id of a public chat path, else None."""
    match = _PUBLIC.match(path)
    if match is None or match.group("bot") in _NOT_BOTS:
        return None
    return match.group("bot")


class BotCorsMiddleware:
    """Grants or refuses cross-origin access to the public chat, per bot."""

    def __init__(self, app: ASGIApp, lookup: Lookup) -> None:
        self.app = app
        self.lookup = lookup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the origin of a public chat request; pass everything else through."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        bot_id = public_bot_id(scope["path"])
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        if bot_id is None or origin is None or _same_host(origin, headers.get("host", "")):
            await self.app(scope, receive, send)
            return
        bot = await self.lookup(bot_id)
        allowed = bot is not None and bot.active and origin.lower() in bot.allowed_origins
        preflight = scope["method"] == "OPTIONS" and "access-control-request-method" in headers
        if not allowed:
            await _refuse(send, origin)
            return
        grant = [(b"access-control-allow-origin", origin.encode()), (b"vary", b"Origin")]
        if preflight:
            asked = headers.get("access-control-request-headers", "")
            wanted = [h.strip().lower() for h in asked.split(",") if h.strip()]
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [
                        *grant,
                        (b"access-control-allow-methods", ALLOW_METHODS),
                        (
                            b"access-control-allow-headers",
                            ", ".join(h for h in wanted if h in ALLOW_HEADERS).encode(),
                        ),
                        (b"access-control-max-age", b"600"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_grant(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *grant]
            await send(message)

        await self.app(scope, receive, send_with_grant)


def _same_host(origin: str, host: str) -> bool:
    # BOT GPT's own pages (the chat page) call the API from the host they were served by.
    return bool(host) and urlsplit(origin).netloc.lower() == host.lower()


async def _refuse(send: Send, origin: str) -> None:
    body = orjson.dumps(
        {
            "error": {
                "code": "origin_not_allowed",
                "message": "This website may not use this bot; the bot's owner can add it to "
                "the bot's allowed origins.",
                "details": {"origin": origin[:200]},
            }
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"application/json"), (b"vary", b"Origin")],
        }
    )
    await send({"type": "http.response.body", "body": body})
