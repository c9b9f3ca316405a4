"""Admission, the first step of every turn: the rate limit, then moderation of the text.

It runs before anything is written, so a refused turn stores nothing. Every entry point
(REST, the seeds' /chat/send, WebSocket, /v1/chat/completions, bots' public chat, the CLI)
goes through this one class; idempotent replays are decided before it, by the web layer.
"""

from __future__ import annotations

from collections.abc import Sequence

from botgpt.moderation.service import Moderator, moderate
from botgpt.ratelimit import RateLimiter


class Admission:
    """Lets a turn in, or raises `RateLimited` / `ContentFlagged` / `ServiceUnavailable`."""

    def __init__(
        self,
        limiter: RateLimiter | None = None,
        moderator: Moderator | None = None,
        fail_closed: bool = False,
    ) -> None:
        self.limiter = limiter
        self.moderator = moderator
        self.fail_closed = fail_closed

    async def admit(
        self,
        key: str,
        text: str | None,
        extra_limits: Sequence[tuple[RateLimiter, str]] = (),
    ) -> None:
        """Count the turn against `key` (and any extra limiter/key pairs), then moderate."""
        if self.limiter is not None and self.limiter.enabled:
            await self.limiter.hit(key)
        for limiter, extra_key in extra_limits:
            if limiter.enabled:
                await limiter.hit(extra_key)
        if text is not None and self.moderator is not None:
            await moderate(self.moderator, text, self.fail_closed)
