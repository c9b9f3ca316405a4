"""Conversation CRUD: list, get, rename/archive, delete; ownership enforced on every call."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from botgpt.conversations.links import attach_documents, conversation_documents
from botgpt.conversations.models import Conversation, Message
from botgpt.conversations.schemas import (
    ConversationList,
    ConversationPublic,
    ConversationSummary,
    ConversationTotals,
    ConversationUpdate,
    UsageTotals,
)
from botgpt.conversations.views import conversation_summary, message_public
from botgpt.documents.models import Document
from botgpt.exceptions import InvalidInput, NotFound
from botgpt.ids import utcnow
from botgpt.pagination import Page


async def get_owned(db: AsyncSession, owner_id: str, conversation_id: str) -> Conversation:
    """Load a conversation the owner has; anyone else's is reported as missing."""
    conv = await db.get(Conversation, conversation_id)
    if conv is None or conv.user_id != owner_id:
        raise NotFound("Conversation not found.")
    return conv


async def list_conversations(
    db: AsyncSession, owner_id: str, page: Page, archived: bool
) -> ConversationList:
    """The owner's conversations, most recently active first."""
    where = (Conversation.user_id == owner_id, Conversation.archived.is_(archived))
    total = int((await db.execute(select(func.count()).where(*where))).scalar_one())
    rows = (
        await db.execute(
            select(Conversation)
            .where(*where)
            .order_by(Conversation.updated_at.desc(), Conversation.id)
            .offset(page.offset)
            .limit(page.limit)
        )
    ).scalars()
    return ConversationList(
        items=[conversation_summary(c) for c in rows],
        total=total,
        page=page.page,
        limit=page.limit,
        pages=page.pages(total),
    )


async def get_conversation(
    db: AsyncSession, owner_id: str, conversation_id: str
) -> ConversationPublic:
    """A conversation with its full history in sequence order."""
    conv = await get_owned(db, owner_id, conversation_id)
    messages = (
        await db.execute(
            select(Message).where(Message.conversation_id == conv.id).order_by(Message.seq)
        )
    ).scalars()
    summary = conversation_summary(conv)
    return ConversationPublic(
        **summary.model_dump(),
        user_id=conv.user_id,
        document_ids=await _attached(db, conv.id),
        usage=ConversationTotals(
            prompt_tokens=conv.prompt_tokens,
            completion_tokens=conv.completion_tokens,
            total_tokens=conv.prompt_tokens + conv.completion_tokens,
            cost_usd=conv.cost_usd,
        ),
        messages=[message_public(m) for m in messages],
    )


async def update_conversation(
    db: AsyncSession, owner_id: str, conversation_id: str, body: ConversationUpdate
) -> ConversationSummary:
    """Rename or (un)archive a conversation."""
    conv = await get_owned(db, owner_id, conversation_id)
    if body.title is not None:
        conv.title = body.title.strip()
    if body.archived is not None:
        conv.archived = body.archived
    document_ids = conv_docs = None
    if body.document_ids is not None:
        document_ids = list(dict.fromkeys(body.document_ids))
        await _check_owned_documents(db, owner_id, document_ids)
    if body.mode is not None:
        conv_docs = document_ids if document_ids is not None else await _attached(db, conv.id)
        if body.mode == "grounded" and not conv_docs:
            raise InvalidInput("Grounded mode needs documents: send document_ids too.")
        conv.mode = body.mode
    if document_ids is not None:
        await db.run_sync(lambda s: attach_documents(s.connection(), conv.id, document_ids))
    conv.updated_at = utcnow()
    await db.commit()
    return conversation_summary(conv)


async def _attached(db: AsyncSession, conversation_id: str) -> list[str]:
    rows = await db.execute(
        select(conversation_documents.c.document_id).where(
            conversation_documents.c.conversation_id == conversation_id
        )
    )
    return [r[0] for r in rows]


async def _check_owned_documents(db: AsyncSession, owner_id: str, ids: list[str]) -> None:
    """Every id must be one of the owner's documents (another user's is reported missing)."""
    if not ids:
        return
    found = {
        r[0]
        for r in await db.execute(
            select(Document.id).where(Document.id.in_(ids), Document.owner_id == owner_id)
        )
    }
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound("Document not found.", details={"document_ids": missing})


async def delete_conversation(db: AsyncSession, owner_id: str, conversation_id: str) -> None:
    """Delete a conversation and all its messages."""
    conv = await get_owned(db, owner_id, conversation_id)
    # Explicit delete: SQLite only cascades when foreign keys are on for the connection.
    await db.execute(delete(Message).where(Message.conversation_id == conv.id))
    await db.delete(conv)
    await db.commit()


async def usage_totals(db: AsyncSession, owner_id: str) -> UsageTotals:
    """Tokens and cost summed over the owner's conversations."""
    row = (
        await db.execute(
            select(
                func.count(),
                func.coalesce(func.sum(Conversation.message_count), 0),
                func.coalesce(func.sum(Conversation.prompt_tokens), 0),
                func.coalesce(func.sum(Conversation.completion_tokens), 0),
                func.coalesce(func.sum(Conversation.cost_usd), 0.0),
            ).where(Conversation.user_id == owner_id)
        )
    ).one()
    conversations, messages, prompt, completion, cost = row
    return UsageTotals(
        user_id=owner_id,
        conversations=int(conversations),
        messages=int(messages),
        prompt_tokens=int(prompt),
        completion_tokens=int(completion),
        total_tokens=int(prompt) + int(completion),
        cost_usd=float(cost),
    )
