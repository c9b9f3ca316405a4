"""Bots: create, read, update (with numbered versions), restore a version, delete.

A bot belongs to one owner (another owner's bot is reported as missing). Its provider key
and visitor-signing secret are stored encrypted by a `SecretBox`; changes to the persona
and model settings add a `BotVersion` with a snapshot that `restore` writes back.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from botgpt.bots.models import Bot, BotVersion, bot_documents
from botgpt.bots.schemas import BotCreate, BotUpdate, BotWidget
from botgpt.bots.secrets import SecretBox
from botgpt.exceptions import NotFound
from botgpt.ids import utcnow
from botgpt.pagination import Page

log = logging.getLogger("botgpt.bots")

# The persona and model settings: a change to any of them makes a new version.
VERSIONED = (
    "system_prompt",
    "provider",
    "model",
    "base_url",
    "temperature",
    "max_tokens",
    "api_key_encrypted",
    "api_key_last4",
)
_DIRECT = (
    "name",
    "description",
    "system_prompt",
    "provider",
    "model",
    "base_url",
    "temperature",
    "max_tokens",
    "top_k",
    "min_score",
    "memory_messages",
    "faq_first",
    "faq_threshold",
    "answer_cache",
    "welcome_message",
    "active",
    "session_message_cap",
    "daily_message_cap",
)
DEFAULT_PROMPT = "You are a helpful assistant for this website. Answer clearly and concisely."

# Checks that documents exist and belong to the owner (the documents' public interface).
DocumentCheck = Callable[[str, Sequence[str]], Awaitable[object]]


class BotService:
    """The bots of each owner."""

    def __init__(
        self,
        box: SecretBox,
        check_documents: DocumentCheck,
        on_change: Callable[[str], None] = lambda _bot_id: None,
    ) -> None:
        self.box = box
        self.check_documents = check_documents
        self.on_change = on_change  # drops the public snapshot of a changed bot

    async def create(
        self, db: AsyncSession, owner_id: str, body: BotCreate
    ) -> tuple[Bot, list[str], str]:
        """A new bot (version 1), its document ids and its signing secret (shown once)."""
        document_ids = list(dict.fromkeys(body.document_ids or []))
        if document_ids:
            await self.check_documents(owner_id, document_ids)
        signing = secrets.token_urlsafe(32)
        bot = Bot(
            owner_id=owner_id,
            system_prompt=DEFAULT_PROMPT,
            provider="default",
            model="",
            base_url="",
            temperature=0.7,
            max_tokens=512,
            top_k=5,
            min_score=0.25,
            memory_messages=20,
            faq_first=False,
            faq_threshold=0.75,
            answer_cache=False,
            starters=[],
            widget=BotWidget().model_dump(),
            allowed_origins=[],
            active=True,
            session_message_cap=50,
            daily_message_cap=2000,
            signing_secret_encrypted=self.box.encrypt(signing),
            version=1,
        )
        self._apply(bot, body.model_dump(exclude_unset=True, exclude={"user_id"}))
        db.add(bot)
        await db.flush()
        db.add(
            BotVersion(
                bot_id=bot.id, number=1, created_by=owner_id, changed=[], snapshot=_snapshot(bot)
            )
        )
        await self._set_documents(db, bot.id, document_ids)
        await db.commit()
        log.info("bot created", extra={"bot_id": bot.id})
        return bot, document_ids, signing

    async def get(self, db: AsyncSession, owner_id: str, bot_id: str) -> Bot:
        """One of the owner's bots."""
        bot = await db.get(Bot, bot_id)
        if bot is None or bot.owner_id != owner_id:
            raise NotFound("Bot not found.")
        return bot

    async def find(self, db: AsyncSession, bot_id: str) -> Bot:
        """Any owner's bot (for admins)."""
        bot = await db.get(Bot, bot_id)
        if bot is None:
            raise NotFound("Bot not found.")
        return bot

    async def document_ids(self, db: AsyncSession, bot_id: str) -> list[str]:
        """The documents the bot answers from."""
        rows = await db.execute(
            select(bot_documents.c.document_id)
            .where(bot_documents.c.bot_id == bot_id)
            .order_by(bot_documents.c.document_id)
        )
        return [r[0] for r in rows]

    async def list_bots(self, db: AsyncSession, owner_id: str, page: Page) -> tuple[list[Bot], int]:
        """The owner's bots, newest first, with the total."""
        where = Bot.owner_id == owner_id
        total = int((await db.execute(select(func.count()).where(where))).scalar_one())
        rows = await db.execute(
            select(Bot)
            .where(where)
            .order_by(Bot.created_at.desc(), Bot.id.desc())
            .offset(page.offset)
            .limit(page.limit)
        )
        return list(rows.scalars()), total

    async def update(
        self, db: AsyncSession, actor_id: str, owner_id: str, bot_id: str, body: BotUpdate
    ) -> Bot:
        """Apply the fields sent; a persona or model change adds a version."""
        bot = await self.get(db, owner_id, bot_id)
        changes = body.model_dump(exclude_unset=True)
        if "document_ids" in changes:
            ids = list(dict.fromkeys(changes.pop("document_ids") or []))
            if ids:
                await self.check_documents(owner_id, ids)
            await self._set_documents(db, bot.id, ids)
        before = _snapshot(bot)
        self._apply(bot, changes)
        after = _snapshot(bot)
        changed = [f for f in VERSIONED if before.get(f) != after.get(f)]
        if changed:
            bot.version += 1
            db.add(
                BotVersion(
                    bot_id=bot.id,
                    number=bot.version,
                    created_by=actor_id,
                    changed=_public_names(changed),
                    snapshot=after,
                )
            )
        bot.updated_at = utcnow()
        await db.commit()
        self.on_change(bot.id)
        return bot

    async def versions(
        self, db: AsyncSession, owner_id: str, bot_id: str, page: Page
    ) -> tuple[list[BotVersion], int]:
        """The bot's versions, newest first."""
        await self.get(db, owner_id, bot_id)
        where = BotVersion.bot_id == bot_id
        total = int((await db.execute(select(func.count()).where(where))).scalar_one())
        rows = await db.execute(
            select(BotVersion)
            .where(where)
            .order_by(BotVersion.number.desc())
            .offset(page.offset)
            .limit(page.limit)
        )
        return list(rows.scalars()), total

    async def restore(
        self, db: AsyncSession, actor_id: str, owner_id: str, bot_id: str, number: int
    ) -> Bot:
        """Write a version's settings back, as a new version (history is never rewritten)."""
        bot = await self.get(db, owner_id, bot_id)
        found = await db.execute(
            select(BotVersion).where(BotVersion.bot_id == bot_id, BotVersion.number == number)
        )
        version = found.scalar_one_or_none()
        if version is None:
            raise NotFound("Bot version not found.")
        before = _snapshot(bot)
        for field in VERSIONED:
            if field in version.snapshot:
                setattr(bot, field, version.snapshot[field])
        changed = [f for f in VERSIONED if before.get(f) != _snapshot(bot).get(f)]
        bot.version += 1
        db.add(
            BotVersion(
                bot_id=bot.id,
                number=bot.version,
                created_by=actor_id,
                changed=[*_public_names(changed), f"restored:{number}"],
                snapshot=_snapshot(bot),
            )
        )
        bot.updated_at = utcnow()
        await db.commit()
        self.on_change(bot.id)
        return bot

    async def rotate_signing_secret(self, db: AsyncSession, owner_id: str, bot_id: str) -> str:
        """A new visitor-signing secret; identities signed with the old one stop verifying."""
        bot = await self.get(db, owner_id, bot_id)
        signing = secrets.token_urlsafe(32)
        bot.signing_secret_encrypted = self.box.encrypt(signing)
        bot.updated_at = utcnow()
        await db.commit()
        self.on_change(bot.id)
        return signing

    async def delete(self, db: AsyncSession, owner_id: str, bot_id: str) -> None:
        """Delete a bot with its conversations; the owner's documents stay."""
        bot = await self.get(db, owner_id, bot_id)
        await db.delete(bot)
        await db.commit()
        self.on_change(bot_id)
        log.info("bot deleted", extra={"bot_id": bot_id})

    def provider_key(self, bot: Bot) -> str | None:
        """The bot's own provider key, decrypted (for the provider call only)."""
        if bot.api_key_encrypted is None:
            return None
        return self.box.decrypt(bot.api_key_encrypted)

    def _apply(self, bot: Bot, changes: dict[str, Any]) -> None:
        for field in _DIRECT:
            if field in changes and (changes[field] is not None or field in _NULLABLE):
                setattr(bot, field, changes[field])
        if "base_url" in changes:
            bot.base_url = changes["base_url"] or ""
        if "model" in changes:
            bot.model = changes["model"] or ""
        if "starters" in changes:
            bot.starters = list(changes["starters"] or [])
        if "allowed_origins" in changes:
            bot.allowed_origins = list(dict.fromkeys(changes["allowed_origins"] or []))
        if changes.get("widget") is not None:
            bot.widget = BotWidget(**changes["widget"]).model_dump()
        if "api_key" in changes:
            key = changes["api_key"]
            bot.api_key_encrypted = self.box.encrypt(key) if key else None
            bot.api_key_last4 = key[-4:] if key else None

    async def _set_documents(self, db: AsyncSession, bot_id: str, ids: list[str]) -> None:
        await db.execute(delete(bot_documents).where(bot_documents.c.bot_id == bot_id))
        if ids:
            await db.execute(
                insert(bot_documents), [{"bot_id": bot_id, "document_id": i} for i in ids]
            )


_NULLABLE = ("description", "welcome_message")


def _snapshot(bot: Bot) -> dict[str, Any]:
    return {field: getattr(bot, field) for field in VERSIONED}


def _public_names(fields: list[str]) -> list[str]:
    # The key's ciphertext and its last four characters are one change: "api_key".
    names = ["api_key" if f.startswith("api_key") else f for f in fields]
    return list(dict.fromkeys(names))
