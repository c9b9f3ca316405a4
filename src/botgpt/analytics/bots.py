"""Per-bot insight for its owner: usage, quality signals, and the questions it could not answer.

All figures are SQL aggregates over the bot's visitor conversations (`conversations.bot_id`),
the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from botgpt.analytics.schemas import PeriodPublic, TokenCounts
from botgpt.analytics.service import Period, _as_date, day_bucket, nearest_rank
from botgpt.conversations.models import Conversation, Message, MessageFeedback
from botgpt.pagination import Page


class BotDay(BaseModel):
    """One UTC day of a bot's activity."""

    date: date
    sessions: int
    user_messages: int
    replies: int


class BotAnalyticsPublic(BaseModel):
    """A bot's figures for the period."""

    bot_id: str
    period: PeriodPublic
    sessions: int = Field(description="Visitor sessions started in the period.")
    user_messages: int
    replies: int
    failed_replies: int
    tokens: TokenCounts
    cost_usd: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    faq_answers: int
    faq_hit_rate: float | None = Field(description="Share of replies answered from an FAQ.")
    not_found: int
    not_found_rate: float | None = Field(
        description="Share of replies saying the documents do not cover the question."
    )
    feedback_up: int
    feedback_down: int
    per_day: list[BotDay]


class UnansweredItem(BaseModel):
    """A question the bot could not answer from its documents, or whose reply got a thumbs down."""

    reason: Literal["not_found", "thumbs_down"]
    question: str
    reply: str
    conversation_id: str
    message_id: str
    comment: str | None
    at: datetime


class UnansweredList(BaseModel):
    """A page of unanswered questions, newest first."""

    items: list[UnansweredItem]
    total: int
    page: int
    limit: int
    pages: int


def _of_bot(bot_id: str) -> ColumnElement[bool]:
    return Message.conversation_id.in_(select(Conversation.id).where(Conversation.bot_id == bot_id))


async def bot_analytics(db: AsyncSession, bot_id: str, period: Period) -> BotAnalyticsPublic:
    """Sessions, messages, tokens, cost, latency, FAQ and not-found rates, feedback, per day."""
    in_bot = (_of_bot(bot_id), period.covers(Message.created_at))
    reply = Message.role == "assistant"
    row: Any = (
        await db.execute(
            select(
                func.count().filter(Message.role == "user"),
                func.count().filter(reply),
                func.count().filter(reply, Message.status == "failed"),
                func.coalesce(func.sum(Message.prompt_tokens), 0),
                func.coalesce(func.sum(Message.completion_tokens), 0),
                func.coalesce(func.sum(Message.cost_usd), 0.0),
                func.count().filter(Message.source == "faq"),
                func.count().filter(Message.source == "not_found"),
            ).where(*in_bot)
        )
    ).one()
    users, replies, failed, prompt, completion, cost, faq, not_found = row
    sessions = int(
        (
            await db.execute(
                select(func.count()).where(
                    Conversation.bot_id == bot_id, period.covers(Conversation.created_at)
                )
            )
        ).scalar_one()
    )
    votes = dict(
        (
            await db.execute(
                select(MessageFeedback.rating, func.count())
                .join(Message, Message.id == MessageFeedback.message_id)
                .where(*in_bot)
                .group_by(MessageFeedback.rating)
            )
        ).all()
    )
    p50, p95 = await _latency_percentiles(db, in_bot)
    replies_n = int(replies)
    return BotAnalyticsPublic(
        bot_id=bot_id,
        period=period.public(),
        sessions=sessions,
        user_messages=int(users),
        replies=replies_n,
        failed_replies=int(failed),
        tokens=TokenCounts(
            prompt_tokens=int(prompt),
            completion_tokens=int(completion),
            total_tokens=int(prompt) + int(completion),
        ),
        cost_usd=float(cost),
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        faq_answers=int(faq),
        faq_hit_rate=round(int(faq) / replies_n, 4) if replies_n else None,
        not_found=int(not_found),
        not_found_rate=round(int(not_found) / replies_n, 4) if replies_n else None,
        feedback_up=int(votes.get("up", 0)),
        feedback_down=int(votes.get("down", 0)),
        per_day=await _per_day(db, bot_id, period),
    )


async def _latency_percentiles(
    db: AsyncSession, where: tuple[ColumnElement[bool], ...]
) -> tuple[float | None, float | None]:
    done = (
        *where,
        Message.role == "assistant",
        Message.status == "complete",
        Message.latency_ms.is_not(None),
    )
    count = int((await db.execute(select(func.count()).where(*done))).scalar_one())
    if not count:
        return None, None
    return await nearest_rank(db, done, count, 0.5), await nearest_rank(db, done, count, 0.95)


async def _per_day(db: AsyncSession, bot_id: str, period: Period) -> list[BotDay]:
    day = day_bucket(db, Message.created_at)
    rows = await db.execute(
        select(
            day,
            func.count().filter(Message.role == "user"),
            func.count().filter(Message.role == "assistant"),
        )
        .where(_of_bot(bot_id), period.covers(Message.created_at))
        .group_by(day)
    )
    messages = {_as_date(d): (int(u), int(r)) for d, u, r in rows.all()}
    conv_day = day_bucket(db, Conversation.created_at)
    started = await db.execute(
        select(conv_day, func.count())
        .where(Conversation.bot_id == bot_id, period.covers(Conversation.created_at))
        .group_by(conv_day)
    )
    sessions = {_as_date(d): int(n) for d, n in started.all()}
    return [
        BotDay(
            date=d,
            sessions=sessions.get(d, 0),
            user_messages=messages.get(d, (0, 0))[0],
            replies=messages.get(d, (0, 0))[1],
        )
        for d in period.days()
    ]


async def unanswered(db: AsyncSession, bot_id: str, page: Page) -> UnansweredList:
    """Not-found replies and thumbs-down replies of the bot, newest first."""
    question = aliased(Message)
    base: Any = (
        select(
            Message.id.label("message_id"),
            Message.conversation_id,
            Message.content.label("reply"),
            question.content.label("question"),
        )
        .join(question, question.id == Message.reply_to_id)
        .where(_of_bot(bot_id), Message.role == "assistant")
    )
    not_found = base.add_columns(
        literal("not_found").label("reason"),
        literal(None).label("comment"),
        Message.created_at.label("at"),
    ).where(Message.source == "not_found")
    disliked = (
        base.add_columns(
            literal("thumbs_down").label("reason"),
            MessageFeedback.comment.label("comment"),
            MessageFeedback.updated_at.label("at"),
        )
        .join(MessageFeedback, MessageFeedback.message_id == Message.id)
        .where(MessageFeedback.rating == "down")
    )
    both = union_all(not_found, disliked).subquery()
    total = int((await db.execute(select(func.count()).select_from(both))).scalar_one())
    rows = await db.execute(
        select(both)
        .order_by(both.c.at.desc(), both.c.message_id)
        .offset(page.offset)
        .limit(page.limit)
    )
    items = [
        UnansweredItem(
            reason=r.reason,
            question=r.question,
            reply=r.reply,
            conversation_id=r.conversation_id,
            message_id=r.message_id,
            comment=r.comment,
            at=r.at,
        )
        for r in rows
    ]
    return UnansweredList(
        items=items, total=total, page=page.page, limit=page.limit, pages=page.pages(total)
    )
