"""An opt-in cache of complete answers: the same question to the same assistant over the same
documents is answered once (seeds 000 and 004: "caching frequent responses").

Only a conversation's first question is cached (later ones depend on the history). The key
holds the owner, the profile (persona, model, temperature, bot and its version) and each
document in scope with the time it last changed, so any change of those misses; entries of one
owner are never served to another. Entries live in Redis when configured (shared by every
process, with a TTL) and in the database otherwise.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from redis.exceptions import RedisError
from sqlalchemy import Connection, ForeignKey, String, Table, Text, delete, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from botgpt.conversations.profile import TurnProfile
from botgpt.db import Base
from botgpt.ids import utcnow
from botgpt.redis_channel import LazyRedis
from botgpt.sqlrunner import SqlRunner
from botgpt.types_ import UTCDateTime

log = logging.getLogger("botgpt.turn")
_SPACE = re.compile(r"\s+")
_TRAILING = re.compile(r"[\s?!.]+$")


class CachedAnswer(Base):
    """One cached answer (the database store)."""

    __tablename__ = "answer_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    answer: Mapped[str] = mapped_column(Text)
    citations: Mapped[str | None] = mapped_column(Text)  # JSON
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True, slots=True)
class Hit:
    """A cached answer and the citations it was given with."""

    answer: str
    citations: list[dict[str, Any]] | None


def normalise(question: str) -> str:
    """The question as the cache compares it: case, spacing and end punctuation ignored."""
    return _TRAILING.sub("", _SPACE.sub(" ", question.strip().lower()))


def cache_key(
    owner_id: str, profile: TurnProfile, question: str, documents: list[tuple[str, str]]
) -> str:
    """The key of an answer: owner, profile, question and document versions."""
    parts = {
        "owner": owner_id,
        "prompt": profile.system_prompt,
        "provider": [profile.provider.kind, profile.provider.model, profile.provider.base_url],
        "temperature": profile.temperature,
        "max_tokens": profile.max_tokens,
        "bot": [profile.bot_id, profile.bot_version],
        "question": normalise(question),
        "documents": sorted(documents),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class AnswerCache:
    """Reads and writes cached answers in Redis or the database."""

    def __init__(self, runner: SqlRunner, redis_url: str = "", ttl_seconds: int = 86_400) -> None:
        self.runner = runner
        self.ttl = ttl_seconds
        self._redis = LazyRedis(redis_url) if redis_url else None

    async def get(self, key: str) -> Hit | None:
        """The cached answer for `key`, if any and not expired."""
        if self._redis is None:
            return await self.runner.run(lambda conn: _load(conn, key))
        try:
            raw = await self._redis.client.get(f"botgpt:answer:{key}")
        except (RedisError, OSError):
            log.warning("answer cache: Redis unreachable, answering without it")
            return None
        if not isinstance(raw, bytes):
            return None
        data = json.loads(raw)
        return Hit(data["answer"], data.get("citations"))

    async def put(
        self, key: str, owner_id: str, answer: str, citations: list[dict[str, Any]] | None
    ) -> None:
        """Keep an answer for the TTL."""
        if self._redis is None:
            expires = utcnow() + timedelta(seconds=self.ttl)
            hit = Hit(answer, citations)
            await self.runner.run(lambda conn: _store(conn, key, owner_id, hit, expires))
            return
        raw = json.dumps({"answer": answer, "citations": citations})
        owned = _owner_set(owner_id)
        try:
            # The owner's set of keys lets erasure find the entries (the key is a hash).
            pipe = self._redis.client.pipeline(transaction=True)
            pipe.set(f"botgpt:answer:{key}", raw, ex=self.ttl)
            pipe.sadd(owned, key)
            pipe.expire(owned, self.ttl)
            await pipe.execute()
        except (RedisError, OSError):
            log.warning("answer cache: Redis unreachable, answer not kept")

    async def forget_owner(self, owner_id: str) -> None:
        """Drop every cached answer of an owner (erasure; the database's rows cascade)."""
        if self._redis is None:
            await self.runner.run(
                lambda conn: conn.execute(delete(_table).where(_table.c.owner_id == owner_id))
            )
            return
        owned = _owner_set(owner_id)
        client = self._redis.client
        try:
            keys = await client.smembers(owned)
            names = [f"botgpt:answer:{k.decode() if isinstance(k, bytes) else k}" for k in keys]
            await client.delete(*names, owned)
        except (RedisError, OSError):
            # The rows are gone already; the entries expire with their TTL.
            log.warning("answer cache: Redis unreachable, an erased owner's answers stay cached")

    async def aclose(self) -> None:
        """Close the Redis connections, if any."""
        if self._redis is not None:
            await self._redis.close_client()


_table = cast(Table, CachedAnswer.__table__)


def _owner_set(owner_id: str) -> str:
    return f"botgpt:answer-owner:{owner_id}"


def _load(conn: Connection, key: str) -> Hit | None:
    row = conn.execute(
        select(_table.c.answer, _table.c.citations, _table.c.expires_at).where(_table.c.key == key)
    ).first()
    if row is None or row.expires_at <= utcnow():
        return None
    return Hit(row.answer, json.loads(row.citations) if row.citations else None)


def _store(conn: Connection, key: str, owner_id: str, hit: Hit, expires: datetime) -> None:
    conn.execute(delete(_table).where(_table.c.key == key))
    conn.execute(
        insert(_table).values(
            key=key,
            owner_id=owner_id,
            answer=hit.answer,
            citations=json.dumps(hit.citations) if hit.citations is not None else None,
            expires_at=expires,
        )
    )
