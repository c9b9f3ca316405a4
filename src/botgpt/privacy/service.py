"""Export a user's personal data as streamed JSON, and erase a user with everything they own."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Protocol

import orjson
from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from botgpt.auth import profile
from botgpt.auth.models import ApiKey, RefreshToken, User
from botgpt.auth.schemas import ApiKeyPublic
from botgpt.auth.service import AuthService, Principal
from botgpt.conversations import service as conversations
from botgpt.conversations.models import Conversation
from botgpt.documents.models import Document
from botgpt.documents.service import DocumentService
from botgpt.exceptions import Conflict, NotFound, PermissionDenied
from botgpt.ids import utcnow
from botgpt.privacy.schemas import ExportHead, document_export

log = logging.getLogger("botgpt.privacy")

# Rows read per query while streaming an export; the export never holds more than this.
EXPORT_BATCH = 100

_LAST_ADMIN = "The last active admin cannot be erased; make another user an admin first."


async def find_subject(db: AsyncSession, principal: Principal, user_id: str | None) -> User:
    """The user an export or erasure is about; unlike `acting_user`, never creates one."""
    user: User | None
    if user_id is None or user_id == principal.user_id:
        user = await db.get(User, principal.user_id)
    elif not principal.is_service:
        raise PermissionDenied("Only a service API key may act for another user.")
    else:
        # An internal id wins over an external id that happens to be spelled the same.
        user = await db.get(User, user_id)
        if user is None:
            found = await db.execute(select(User).where(User.external_id == user_id))
            user = found.scalar()
    if user is None:
        raise NotFound("User not found.")
    return user


# -- export ---------------------------------------------------------------------------------
async def export_head(db: AsyncSession, actor_id: str, subject: User) -> bytes:
    """The small part of an export (user, API keys, usage) as a JSON object; logs the export."""
    keys = await db.execute(
        select(ApiKey).where(ApiKey.user_id == subject.id).order_by(ApiKey.created_at, ApiKey.id)
    )
    head = ExportHead(
        exported_at=utcnow(),
        user=await profile.user_public(db, subject),
        consent_history=[
            profile.consent_public(c) for c in await profile.consent_history(db, subject.id)
        ],
        api_keys=[ApiKeyPublic.model_validate(k) for k in keys.scalars()],
        usage=await conversations.usage_totals(db, subject.id),
    )
    log.info("personal data exported", extra={"actor_id": actor_id, "subject_id": subject.id})
    return _json(head)


def _json(model: BaseModel) -> bytes:
    # The API's own JSON rendering (e.g. of datetimes), so an export matches what GETs return.
    return orjson.dumps(model.model_dump(mode="json"))


async def export_body(
    sessions: async_sessionmaker[AsyncSession], owner_id: str, head: bytes
) -> AsyncIterator[bytes]:
    """The whole export as JSON pieces: the head, then documents and conversations in batches.

    Each query runs in a short session of its own, so a slow reader holds no connection.
    """
    # Reopen the head object so the long lists can follow it.
    yield head[:-1] + b',"documents":['
    separator = b""
    async for ids in _id_batches(
        sessions, Document.id, Document.created_at, Document.owner_id == owner_id
    ):
        async with sessions() as db:
            rows = await db.execute(
                select(Document)
                .where(Document.id.in_(ids))
                .order_by(Document.created_at, Document.id)
            )
            pieces = [_json(document_export(d)) for d in rows.scalars()]
        for piece in pieces:
            yield separator + piece
            separator = b","
    yield b'],"conversations":['
    separator = b""
    async for ids in _id_batches(
        sessions, Conversation.id, Conversation.created_at, Conversation.user_id == owner_id
    ):
        for conversation_id in ids:
            async with sessions() as db:
                try:
                    conv = await conversations.get_conversation(db, owner_id, conversation_id)
                except NotFound:  # deleted while the export ran
                    continue
            yield separator + _json(conv)
            separator = b","
    yield b"]}"


async def _id_batches(
    sessions: async_sessionmaker[AsyncSession],
    ident: InstrumentedAttribute[str],
    created: InstrumentedAttribute[datetime],
    where: ColumnElement[bool],
) -> AsyncIterator[list[str]]:
    """Ids of matching rows, oldest first, in batches (keyset paging: no growing OFFSET)."""
    after: tuple[datetime, str] | None = None
    while True:
        query = select(ident, created).where(where).order_by(created, ident).limit(EXPORT_BATCH)
        if after is not None:
            query = query.where(
                or_(created > after[0], and_(created == after[0], ident > after[1]))
            )
        async with sessions() as db:
            rows = (await db.execute(query)).all()
        if rows:
            yield [row[0] for row in rows]
        if len(rows) < EXPORT_BATCH:
            return
        after = (rows[-1][1], rows[-1][0])


# -- erasure --------------------------------------------------------------------------------
class OwnerCache(Protocol):
    """A cache holding an owner's data outside the database (the chat's answer cache)."""

    async def forget_owner(self, owner_id: str) -> None:
        """Drop everything kept for ``owner_id``."""


async def erase(
    db: AsyncSession,
    auth: AuthService,
    documents: DocumentService,
    actor_id: str,
    subject: User,
    caches: Sequence[OwnerCache] = (),
) -> None:
    """Delete the user's documents (files, chunks, vectors, keywords), then the user row,
    then what ``caches`` keep of them.

    The row's foreign keys cascade to conversations, messages, their document links, API
    keys, refresh tokens and idempotency records.
    """
    subject_id = subject.id
    guarded = subject.is_admin and subject.is_active
    if guarded and not await _other_active_admin(db, subject_id):
        raise Conflict(_LAST_ADMIN)
    # Through the service, not the cascade: the cascade would drop the rows but keep the files.
    while ids := await _document_ids(db, subject_id):
        for document_id in ids:
            with contextlib.suppress(NotFound):  # deleted concurrently: already done
                await documents.delete(db, subject_id, document_id)
    families = await db.execute(
        select(RefreshToken.family_id).where(RefreshToken.user_id == subject_id).distinct()
    )
    session_ids = list(families.scalars())
    if guarded:
        # PostgreSQL: lock the admins (in a fixed order) so two admins erased at once cannot
        # each see the other as the one left. SQLite ignores this and serialises the writes.
        await db.execute(
            select(User.id)
            .where(User.is_admin.is_(True), User.is_active.is_(True))
            .order_by(User.id)
            .with_for_update()
        )
    # Documents uploaded while this ran: their rows cascade, their files are removed below.
    late = await db.execute(select(Document.storage_key).where(Document.owner_id == subject_id))
    late_keys = list(late.scalars())
    await db.execute(delete(User).where(User.id == subject_id))
    if guarded and not await _other_active_admin(db, subject_id):
        await db.rollback()
        raise Conflict(_LAST_ADMIN)
    await db.commit()
    for key in late_keys:
        await documents.blobs.delete(key)
    await documents.forget_owner(subject_id)  # vectors of late documents (Qdrant)
    await auth.forget_user(subject_id, session_ids)
    for cache in caches:
        await cache.forget_owner(subject_id)
    log.info("user erased", extra={"actor_id": actor_id, "subject_id": subject_id})


async def _other_active_admin(db: AsyncSession, user_id: str) -> bool:
    found = await db.execute(
        select(User.id)
        .where(User.is_admin.is_(True), User.is_active.is_(True), User.id != user_id)
        .limit(1)
    )
    return found.first() is not None


async def _document_ids(db: AsyncSession, owner_id: str) -> list[str]:
    found = await db.execute(
        select(Document.id).where(Document.owner_id == owner_id).limit(EXPORT_BATCH)
    )
    return list(found.scalars())
