"""Admin analytics computed with SQL aggregates; works the same on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from botgpt.analytics.schemas import (
    ConversationAnalyticsPublic,
    ConversationCounts,
    DashboardPublic,
    DayPoint,
    LatencyStats,
    MessageCounts,
    ModelUsage,
    PeriodPublic,
    TokenCounts,
    TopConversation,
    UserAnalyticsPublic,
    UserCounts,
)
from botgpt.auth.models import User
from botgpt.conversations.models import Conversation, Message
from botgpt.exceptions import InvalidInput, NotFound
from botgpt.ids import utcnow

DEFAULT_SPAN = timedelta(days=30)
MAX_SPAN = timedelta(days=366)
_ASSISTANT = Message.role == "assistant"


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open UTC interval [since, until)."""

    since: datetime
    until: datetime

    def public(self) -> PeriodPublic:
        """The period as returned to clients."""
        return PeriodPublic(since=self.since, until=self.until)

    def covers(self, column: ColumnElement[datetime] | Any) -> ColumnElement[bool]:
        """A condition: `column` falls within the period."""
        return and_(column >= self.since, column < self.until)

    def days(self) -> list[date]:
        """Every UTC day the period touches, oldest first."""
        first, last = self.since.date(), (self.until - timedelta(microseconds=1)).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def make_period(
    since: datetime | None, until: datetime | None, now: datetime | None = None
) -> Period:
    """The requested period (default: the last 30 days); naive datetimes are taken as UTC."""
    end = _utc(until) if until is not None else (now or utcnow())
    start = _utc(since) if since is not None else end - DEFAULT_SPAN
    if start >= end:
        raise InvalidInput("since must be before until.", details={"since": str(start)})
    if end - start > MAX_SPAN:
        raise InvalidInput(f"The period may span at most {MAX_SPAN.days} days.")
    return Period(start, end)


def day_bucket(db: AsyncSession, column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp column, in the session's SQL dialect."""
    if db.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)  # SQLite stores UTC text: date() takes its day


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


@dataclass(slots=True)
class _MessageTotals:
    counts: MessageCounts
    tokens: TokenCounts
    cost_usd: float


def _of_user(user_id: str | None) -> list[ColumnElement[bool]]:
    """Conditions restricting messages to one user's conversations (none for everyone)."""
    if user_id is None:
        return []
    owned = select(Conversation.id).where(Conversation.user_id == user_id)
    return [Message.conversation_id.in_(owned)]


async def _message_totals(db: AsyncSession, period: Period, user_id: str | None) -> _MessageTotals:
    """Messages by role and status, with the replies' tokens and cost."""
    query = (
        select(
            Message.role,
            Message.status,
            func.count(),
            func.coalesce(func.sum(Message.prompt_tokens), 0),
            func.coalesce(func.sum(Message.completion_tokens), 0),
            func.coalesce(func.sum(Message.cost_usd), 0.0),
        )
        .where(period.covers(Message.created_at), *_of_user(user_id))
        .group_by(Message.role, Message.status)
    )
    users = 0
    statuses: dict[str, int] = {}
    prompt = completion = 0
    cost = 0.0
    for role, status, count, p, ct, usd in await db.execute(query):
        if role == "user":
            users += int(count)
        elif role == "assistant":
            statuses[str(status)] = statuses.get(str(status), 0) + int(count)
            prompt, completion = prompt + int(p or 0), completion + int(ct or 0)
            cost += float(usd or 0.0)
    counts = MessageCounts(
        user_messages=users,
        replies=sum(statuses.values()),
        complete=statuses.get("complete", 0),
        failed=statuses.get("failed", 0),
        cancelled=statuses.get("cancelled", 0),
    )
    tokens = TokenCounts(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )
    return _MessageTotals(counts, tokens, cost)


async def _daily(db: AsyncSession, period: Period, user_id: str | None) -> list[DayPoint]:
    """Conversations started and replies written per UTC day, with no day left out."""
    conv_day = day_bucket(db, Conversation.created_at)
    conv_query = select(conv_day, func.count()).where(period.covers(Conversation.created_at))
    if user_id is not None:
        conv_query = conv_query.where(Conversation.user_id == user_id)
    started = {_as_date(d): int(n) for d, n in await db.execute(conv_query.group_by(conv_day))}
    msg_day = day_bucket(db, Message.created_at)
    msg_query = (
        select(
            msg_day,
            func.count(),
            func.coalesce(func.sum(Message.prompt_tokens), 0)
            + func.coalesce(func.sum(Message.completion_tokens), 0),
            func.coalesce(func.sum(Message.cost_usd), 0.0),
        )
        .where(_ASSISTANT, period.covers(Message.created_at), *_of_user(user_id))
        .group_by(msg_day)
    )
    replies = {
        _as_date(d): (int(n), int(t), float(c)) for d, n, t, c in await db.execute(msg_query)
    }
    return [
        DayPoint(
            date=day,
            conversations=started.get(day, 0),
            replies=replies.get(day, (0, 0, 0.0))[0],
            tokens=replies.get(day, (0, 0, 0.0))[1],
            cost_usd=replies.get(day, (0, 0, 0.0))[2],
        )
        for day in period.days()
    ]


async def _latency(db: AsyncSession, period: Period) -> LatencyStats:
    """Average and p95 (nearest rank) latency of the period's complete replies."""
    done = (
        _ASSISTANT,
        Message.status == "complete",
        Message.latency_ms.is_not(None),
        period.covers(Message.created_at),
    )
    avg, count = (
        await db.execute(select(func.avg(Message.latency_ms), func.count()).where(*done))
    ).one()
    if not count:
        return LatencyStats(avg_ms=None, p95_ms=None)
    p95 = await nearest_rank(db, done, int(count), 0.95)
    return LatencyStats(avg_ms=float(avg), p95_ms=p95)


async def nearest_rank(
    db: AsyncSession, where: tuple[ColumnElement[bool], ...], count: int, q: float
) -> float | None:
    """The q-quantile (nearest rank) of the latency of `count` replies matching `where`."""
    rank = math.ceil(q * count) - 1  # one row fetched, on either database
    value = (
        await db.execute(
            select(Message.latency_ms)
            .where(*where)
            .order_by(Message.latency_ms)
            .offset(rank)
            .limit(1)
        )
    ).scalar_one()
    return None if value is None else float(value)


async def _models(db: AsyncSession, period: Period) -> list[ModelUsage]:
    """Replies, tokens, cost and average latency per provider and model."""
    complete_latency = case((Message.status == "complete", Message.latency_ms))
    query = (
        select(
            Message.provider,
            Message.model,
            func.count(),
            func.coalesce(func.sum(Message.prompt_tokens), 0),
            func.coalesce(func.sum(Message.completion_tokens), 0),
            func.coalesce(func.sum(Message.cost_usd), 0.0),
            func.avg(complete_latency),
        )
        .where(_ASSISTANT, period.covers(Message.created_at))
        .group_by(Message.provider, Message.model)
        .order_by(func.count().desc(), Message.provider, Message.model)
    )
    return [
        ModelUsage(
            provider=provider,
            model=model,
            replies=int(n),
            prompt_tokens=int(p),
            completion_tokens=int(ct),
            cost_usd=float(usd),
            avg_latency_ms=None if lat is None else float(lat),
        )
        for provider, model, n, p, ct, usd, lat in await db.execute(query)
    ]


async def _by_mode(db: AsyncSession, period: Period) -> dict[str, int]:
    """Conversations started in the period, per mode."""
    query = (
        select(Conversation.mode, func.count())
        .where(period.covers(Conversation.created_at))
        .group_by(Conversation.mode)
    )
    return {str(mode): int(n) for mode, n in await db.execute(query)}


async def dashboard(db: AsyncSession, period: Period) -> DashboardPublic:
    """Totals of the period with a per-day series and a per-model breakdown."""
    total, new = (
        await db.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((period.covers(User.created_at), 1), else_=0)), 0),
            ).where(User.created_at < period.until)
        )
    ).one()
    active = (
        await db.execute(
            select(func.count(func.distinct(Conversation.user_id)))
            .select_from(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(period.covers(Message.created_at))
        )
    ).scalar_one()
    by_mode = await _by_mode(db, period)
    totals = await _message_totals(db, period, None)
    settled = totals.counts.complete + totals.counts.failed
    return DashboardPublic(
        period=period.public(),
        users=UserCounts(total=int(total), active=int(active), new=int(new)),
        conversations=ConversationCounts(new=sum(by_mode.values()), by_mode=by_mode),
        messages=totals.counts,
        tokens=totals.tokens,
        cost_usd=totals.cost_usd,
        latency=await _latency(db, period),
        error_rate=totals.counts.failed / settled if settled else None,
        daily=await _daily(db, period, None),
        models=await _models(db, period),
    )


async def user_analytics(db: AsyncSession, period: Period, user_id: str) -> UserAnalyticsPublic:
    """One user's (by id or external id) activity in the period; unknown users are 404."""
    user = (
        await db.execute(select(User).where((User.id == user_id) | (User.external_id == user_id)))
    ).scalar()
    if user is None:
        raise NotFound("User not found.")
    in_period = case((period.covers(Conversation.created_at), 1), else_=0)
    started, owned = (
        await db.execute(
            select(func.coalesce(func.sum(in_period), 0), func.count()).where(
                Conversation.user_id == user.id
            )
        )
    ).one()
    last = (
        await db.execute(select(func.max(Message.created_at)).where(*_of_user(user.id)))
    ).scalar_one()
    totals = await _message_totals(db, period, user.id)
    return UserAnalyticsPublic(
        period=period.public(),
        user_id=user.id,
        email=user.email,
        external_id=user.external_id,
        created_at=user.created_at,
        conversations=int(started),
        conversations_total=int(owned),
        messages=totals.counts.user_messages + totals.counts.replies,
        user_messages=totals.counts.user_messages,
        replies=totals.counts.replies,
        failed_replies=totals.counts.failed,
        tokens=totals.tokens,
        cost_usd=totals.cost_usd,
        last_activity_at=last,
        daily=await _daily(db, period, user.id),
    )


async def conversation_analytics(
    db: AsyncSession, period: Period, limit: int
) -> ConversationAnalyticsPublic:
    """Conversations started in the period: sizes, turns, failures and the top `limit` by tokens."""
    started = period.covers(Conversation.created_at)
    count, avg_messages, max_messages = (
        await db.execute(
            select(
                func.count(),
                func.avg(Conversation.message_count),
                func.max(Conversation.message_count),
            ).where(started)
        )
    ).one()
    in_started = (
        select(func.count(func.distinct(Message.conversation_id)), func.count())
        .select_from(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(started)
    )
    _, turns = (await db.execute(in_started.where(Message.role == "user"))).one()
    failed, _ = (await db.execute(in_started.where(_ASSISTANT, Message.status == "failed"))).one()
    tokens = (Conversation.prompt_tokens + Conversation.completion_tokens).label("tokens")
    top = await db.execute(
        select(Conversation, tokens)
        .where(started)
        .order_by(tokens.desc(), Conversation.created_at.desc(), Conversation.id)
        .limit(limit)
    )
    n = int(count)
    return ConversationAnalyticsPublic(
        period=period.public(),
        count=n,
        by_mode=await _by_mode(db, period),
        avg_messages=float(avg_messages) if n else 0.0,
        max_messages=int(max_messages or 0),
        avg_turns=int(turns) / n if n else 0.0,
        failed_share=int(failed) / n if n else 0.0,
        top=[
            TopConversation(
                id=conv.id,
                user_id=conv.user_id,
                title=conv.title,
                mode=conv.mode,
                messages=conv.message_count,
                tokens=int(total),
                cost_usd=conv.cost_usd,
                created_at=conv.created_at,
            )
            for conv, total in top
        ],
    )
