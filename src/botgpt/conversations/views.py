"""Turning stored rows into API shapes."""

from __future__ import annotations

from typing import Any

from botgpt.conversations.models import Conversation
from botgpt.conversations.records import TurnResult
from botgpt.conversations.schemas import (
    ConversationSummary,
    MessageError,
    MessagePublic,
    TurnPublic,
    UsagePublic,
)


def message_public(m: Any, *, with_manifest: bool = True) -> MessagePublic:
    """A message row (ORM object or Row with the same attribute names) as the API shows it."""
    usage = None
    if m.prompt_tokens is not None or m.completion_tokens is not None:
        p, c = m.prompt_tokens or 0, m.completion_tokens or 0
        usage = UsagePublic(prompt_tokens=p, completion_tokens=c, total_tokens=p + c)
    error = None
    if m.error_code is not None:
        error = MessageError(code=m.error_code, message=m.error_message or "")
    return MessagePublic(
        id=m.id,
        seq=m.seq,
        role=m.role,
        content=m.content,
        status=m.status,
        created_at=m.created_at,
        completed_at=m.completed_at,
        reply_to_id=m.reply_to_id,
        superseded=m.superseded,
        model=m.model,
        provider=m.provider,
        usage=usage,
        latency_ms=m.latency_ms,
        cost_usd=m.cost_usd,
        error=error,
        citations=m.citations,
        context_manifest=m.context_manifest if with_manifest else None,
        source=m.source,
        faq_id=m.faq_id,
        bot_version=m.bot_version,
        support=m.support,
    )


def conversation_summary(c: Conversation) -> ConversationSummary:
    """A conversation row in list form."""
    return ConversationSummary(
        id=c.id,
        title=c.title,
        mode=c.mode,
        archived=c.archived,
        message_count=c.message_count,
        last_message_preview=c.last_message_preview,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


def turn_public(result: TurnResult) -> TurnPublic:
    """The API shape of a turn."""
    assistant = message_public(result.assistant)
    return TurnPublic(
        conversation_id=result.conversation_id,
        title=result.title,
        mode=result.mode,
        user_message=message_public(result.user),
        assistant_message=assistant,
        assistant_response=assistant.content,
    )
