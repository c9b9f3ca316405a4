"""Idempotency-Key support: a retried POST gets the first response instead of a second effect."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel
from sqlalchemy import JSON, ForeignKey, Integer, String, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from botgpt.db import Base
from botgpt.errors import llm_error_payload, status_for_domain, status_for_llm
from botgpt.exceptions import Conflict, DomainError, InvalidInput, ProviderFailed
from botgpt.ids import utcnow
from botgpt.llm.errors import LLMError
from botgpt.types_ import UTCDateTime


class IdempotencyRecord(Base):
    """The first response to a request carrying an Idempotency-Key, replayed on retries."""

    __tablename__ = "idempotency_records"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """A stable hash of what the request asked for."""
    raw = orjson.dumps({"m": method, "p": path, "b": body}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()


class Replay(Exception):
    """The stored first response of a request, to be sent again as is."""

    def __init__(self, status_code: int, body: dict[str, Any]) -> None:
        super().__init__("idempotent replay")
        self.status_code = status_code
        self.body = body


async def run_once(
    db: AsyncSession,
    user_id: str,
    key: str | None,
    fingerprint: str,
    status_code: int,
    action: Callable[[], Awaitable[BaseModel]],
) -> BaseModel:
    """Run `action` once per (user, key); a repeat raises `Replay` with the first outcome.

    Expected failures (domain and provider errors) are part of the first outcome and
    replayed too; an unexpected crash frees the key so the client may retry.
    """
    if key is None:
        return await action()
    if len(key) > 200:
        raise InvalidInput("Idempotency-Key must be at most 200 characters.")
    try:
        await db.execute(
            insert(IdempotencyRecord).values(
                user_id=user_id, key=key, request_hash=fingerprint, created_at=utcnow()
            )
        )
        await db.commit()
    except IntegrityError:
        await db.rollback()
        await _replay(db, user_id, key, fingerprint)
    try:
        result = await action()
    except DomainError as error:
        await _store(db, user_id, key, _error_status(error), _error_body(error))
        raise
    except BaseException:
        await db.rollback()
        await db.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key
            )
        )
        await db.commit()
        raise
    await _store(db, user_id, key, status_code, result.model_dump(mode="json"))
    return result


async def _replay(db: AsyncSession, user_id: str, key: str, fingerprint: str) -> None:
    row = (
        await db.execute(
            select(
                IdempotencyRecord.request_hash,
                IdempotencyRecord.status_code,
                IdempotencyRecord.response,
            ).where(IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key)
        )
    ).first()
    if row is None:  # freed between our insert and this read: treat as in progress
        raise Conflict("A request with this Idempotency-Key is in progress; retry shortly.")
    if row.request_hash != fingerprint:
        raise InvalidInput("This Idempotency-Key was already used with a different request.")
    if row.status_code is None or row.response is None:
        raise Conflict("A request with this Idempotency-Key is in progress; retry shortly.")
    raise Replay(row.status_code, row.response)


async def _store(
    db: AsyncSession, user_id: str, key: str, status_code: int, body: dict[str, Any]
) -> None:
    await db.rollback()
    await db.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key)
        .values(status_code=status_code, response=body)
    )
    await db.commit()


def _error_status(error: DomainError) -> int:
    if isinstance(error, ProviderFailed) and isinstance(error.cause, LLMError):
        return status_for_llm(error.cause)
    return status_for_domain(error)


def _error_body(error: DomainError) -> dict[str, Any]:
    code, message = error.code, error.message
    if isinstance(error, ProviderFailed) and isinstance(error.cause, LLMError):
        code = error.cause.code
        message = llm_error_payload(error.cause)["message"]
    return {"error": {"code": code, "message": message, "details": error.details}}
