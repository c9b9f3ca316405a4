"""Bots as the public chat sees them: a short-lived in-process snapshot per bot id.

Every public request (CORS checks, config, turns) needs the bot's origins, limits and
persona; reading them from the database each time would put a query in front of every
visitor message. Snapshots live `ttl` seconds; a change made in this process drops its
snapshot at once (other processes see it within the TTL).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from botgpt.bots.models import Bot, bot_documents


@dataclass(frozen=True, slots=True)
class BotSnapshot:
    """What the public side needs of one bot."""

    id: str
    owner_id: str
    name: str
    active: bool
    version: int
    system_prompt: str
    provider: str
    model: str
    base_url: str
    temperature: float
    max_tokens: int
    api_key_encrypted: str | None
    signing_secret_encrypted: str
    document_ids: tuple[str, ...]
    top_k: int
    min_score: float
    memory_messages: int
    faq_first: bool
    faq_threshold: float
    answer_cache: bool
    welcome_message: str | None
    starters: tuple[str, ...]
    widget: dict[str, Any]
    allowed_origins: frozenset[str]
    session_message_cap: int
    daily_message_cap: int

    @classmethod
    def of(cls, bot: Bot, document_ids: Sequence[str]) -> BotSnapshot:
        """The snapshot of a loaded bot row."""
        return cls(
            id=bot.id,
            owner_id=bot.owner_id,
            name=bot.name,
            active=bot.active,
            version=bot.version,
            system_prompt=bot.system_prompt,
            provider=bot.provider,
            model=bot.model,
            base_url=bot.base_url,
            temperature=bot.temperature,
            max_tokens=bot.max_tokens,
            api_key_encrypted=bot.api_key_encrypted,
            signing_secret_encrypted=bot.signing_secret_encrypted,
            document_ids=tuple(document_ids),
            top_k=bot.top_k,
            min_score=bot.min_score,
            memory_messages=bot.memory_messages,
            faq_first=bot.faq_first,
            faq_threshold=bot.faq_threshold,
            answer_cache=bot.answer_cache,
            welcome_message=bot.welcome_message,
            starters=tuple(str(s) for s in bot.starters),
            widget=dict(bot.widget),
            allowed_origins=frozenset(str(o) for o in bot.allowed_origins),
            session_message_cap=bot.session_message_cap,
            daily_message_cap=bot.daily_message_cap,
        )


class BotDirectory:
    """Cached public snapshots of bots by id."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl: float = 5.0) -> None:
        self.sessions = sessions
        self.ttl = ttl
        self._cache: dict[str, tuple[float, BotSnapshot | None]] = {}

    async def find(self, bot_id: str) -> BotSnapshot | None:
        """The bot's snapshot, or None when there is no such bot (active or not)."""
        now = time.monotonic()
        cached = self._cache.get(bot_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        if len(bot_id) > 36:
            return None
        async with self.sessions() as db:
            bot = await db.get(Bot, bot_id)
            snapshot = None
            if bot is not None:
                rows = await db.execute(
                    select(bot_documents.c.document_id)
                    .where(bot_documents.c.bot_id == bot_id)
                    .order_by(bot_documents.c.document_id)
                )
                snapshot = BotSnapshot.of(bot, [r[0] for r in rows])
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[bot_id] = (now + self.ttl, snapshot)
        return snapshot

    def forget(self, bot_id: str) -> None:
        """Drop a snapshot after the bot changed in this process."""
        self._cache.pop(bot_id, None)
