"""The table of FAQs: curated question/answer pairs with the question's embedding."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from botgpt.db import Base
from botgpt.ids import new_id, utcnow
from botgpt.types_ import UTCDateTime

ACTIVE = "active"
DRAFT = "draft"
ARCHIVED = "archived"
STATUSES = (ACTIVE, DRAFT, ARCHIVED)


class FaqCategory(Base):
    """A named group of one owner's FAQs (seed 004's faq_categories)."""

    __tablename__ = "faq_categories"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_faq_categories_owner_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Faq(Base):
    """A question and its answer, owned by one user; only `active` FAQs are searched.

    `embedding` is the question embedded by the app's embedder (`embedding_model`), stored as
    the raw bytes of an L2-normalised float32 vector so that it is portable across backends.
    """

    __tablename__ = "faqs"
    __table_args__ = (
        Index("ix_faqs_owner_status", "owner_id", "status"),
        Index("ix_faqs_owner_created", "owner_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(100))  # the category's name
    category_id: Mapped[str | None] = mapped_column(
        ForeignKey("faq_categories.id", ondelete="SET NULL"), index=True
    )
    priority: Mapped[int] = mapped_column(Integer, default=0)
    view_count: Mapped[int] = mapped_column(Integer, default=0)
    helpful_count: Mapped[int] = mapped_column(Integer, default=0)
    not_helpful_count: Mapped[int] = mapped_column(Integer, default=0)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    language: Mapped[str] = mapped_column(String(16), default="en")
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    embedding_model: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
