"""Tables of bots: the configured assistant, its numbered versions and its knowledge."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from botgpt.db import Base
from botgpt.ids import new_id, utcnow
from botgpt.types_ import UTCDateTime


class Bot(Base):
    """An owner's configured assistant: persona, model, knowledge, widget look and limits.

    `api_key_encrypted` and `signing_secret_encrypted` are Fernet ciphertexts (never sent
    back); `version` is the number of the latest entry in `bot_versions`.
    """

    __tablename__ = "bots"
    __table_args__ = (Index("ix_bots_owner_created", "owner_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    system_prompt: Mapped[str] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(String(20), default="default")
    model: Mapped[str] = mapped_column(String(100), default="")
    base_url: Mapped[str] = mapped_column(String(500), default="")
    temperature: Mapped[float] = mapped_column(Float, default=0.7)
    max_tokens: Mapped[int] = mapped_column(Integer, default=512)
    api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    api_key_last4: Mapped[str | None] = mapped_column(String(4))
    top_k: Mapped[int] = mapped_column(Integer, default=5)
    min_score: Mapped[float] = mapped_column(Float, default=0.25)
    memory_messages: Mapped[int] = mapped_column(Integer, default=20)
    faq_first: Mapped[bool] = mapped_column(Boolean, default=False)
    faq_threshold: Mapped[float] = mapped_column(Float, default=0.75)
    answer_cache: Mapped[bool] = mapped_column(Boolean, default=False)
    welcome_message: Mapped[str | None] = mapped_column(Text)
    starters: Mapped[list[Any]] = mapped_column(JSON, default=list)
    widget: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    allowed_origins: Mapped[list[Any]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    session_message_cap: Mapped[int] = mapped_column(Integer, default=50)
    daily_message_cap: Mapped[int] = mapped_column(Integer, default=2000)
    signing_secret_encrypted: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BotVersion(Base):
    """A numbered snapshot of a bot's persona and model settings, with who changed what."""

    __tablename__ = "bot_versions"
    __table_args__ = (UniqueConstraint("bot_id", "number", name="uq_bot_versions_number"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    bot_id: Mapped[str] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str | None] = mapped_column(String(36))
    changed: Mapped[list[Any]] = mapped_column(JSON, default=list)  # names of changed fields
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


bot_documents = Table(
    "bot_documents",
    Base.metadata,
    Column("bot_id", String(36), ForeignKey("bots.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "document_id", String(36), ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    ),
)
