"""Tables of conversations, their messages and idempotency records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from botgpt.db import Base
from botgpt.ids import new_id, utcnow
from botgpt.types_ import UTCDateTime


class Conversation(Base):
    """A conversation owned by one user; `next_seq` hands out gap-free message numbers."""

    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_user_updated", "user_id", "updated_at"),
        Index("ix_conversations_bot_session", "bot_id", "visitor_session"),
        Index("ix_conversations_bot_visitor", "bot_id", "visitor_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200), default="New conversation")
    mode: Mapped[str] = mapped_column(String(20), default="open")
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    next_seq: Mapped[int] = mapped_column(Integer, default=1)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    last_message_preview: Mapped[str | None] = mapped_column(String(200))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    summary: Mapped[str | None] = mapped_column(Text)
    summary_message_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A bot's visitor conversation: the bot, the visitor's session id and, when the
    # embedding site signed it, the visitor's own user id (same history across devices).
    bot_id: Mapped[str | None] = mapped_column(
        ForeignKey("bots.id", ondelete="CASCADE", name="fk_conversations_bot")
    )
    visitor_session: Mapped[str | None] = mapped_column(String(64))
    visitor_id: Mapped[str | None] = mapped_column(String(200))


class Message(Base):
    """One message; assistant messages move pending -> complete | failed | cancelled."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ux_messages_conversation_seq", "conversation_id", "seq", unique=True),
        # Only replies being generated: what the lease sweeper scans, however long the history.
        Index(
            "ix_messages_live_lease",
            "lease_expires_at",
            sqlite_where=text("status IN ('pending', 'streaming')"),
            postgresql_where=text("status IN ('pending', 'streaming')"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="complete")
    reply_to_id: Mapped[str | None] = mapped_column(String(36))
    superseded: Mapped[bool] = mapped_column(Boolean, default=False)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(500))
    provider: Mapped[str | None] = mapped_column(String(50))
    model: Mapped[str | None] = mapped_column(String(100))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    context_manifest: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    citations: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A reply being generated is leased by its process (see conversations/leases.py).
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Where a reply came from: model | faq | not_found | cached | extractive; the FAQ that
    # answered it; the bot version that wrote it.
    source: Mapped[str | None] = mapped_column(String(16))
    faq_id: Mapped[str | None] = mapped_column(String(36))
    bot_version: Mapped[int | None] = mapped_column(Integer)
    support: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class MessageFeedback(Base):
    """A rating of a reply by one rater (`owner:<user id>` or `session:<visitor session>`)."""

    __tablename__ = "message_feedback"
    __table_args__ = (UniqueConstraint("message_id", "rater", name="uq_message_feedback_rater"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    rater: Mapped[str] = mapped_column(String(100))
    rating: Mapped[str] = mapped_column(String(8))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
