"""Response shapes of the admin analytics API."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field


class PeriodPublic(BaseModel):
    """The half-open interval [since, until) the figures cover."""

    since: datetime
    until: datetime


class UserCounts(BaseModel):
    """Users: all accounts, those active in the period and those created in it."""

    total: int
    active: int = Field(description="Users with at least one message in the period.")
    new: int


class ConversationCounts(BaseModel):
    """Conversations started in the period."""

    new: int
    by_mode: dict[str, int]


class MessageCounts(BaseModel):
    """Messages written in the period."""

    user_messages: int
    replies: int = Field(description="Assistant replies of every status.")
    complete: int
    failed: int
    cancelled: int


class TokenCounts(BaseModel):
    """Tokens used by the period's replies."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class LatencyStats(BaseModel):
    """Latency of complete replies, in milliseconds (null when there are none)."""

    avg_ms: float | None
    p95_ms: float | None


class DayPoint(BaseModel):
    """One UTC day of the per-day series."""

    date: date
    conversations: int
    replies: int
    tokens: int
    cost_usd: float


class ModelUsage(BaseModel):
    """Replies, tokens, cost and latency of one provider's model."""

    provider: str | None
    model: str | None
    replies: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    avg_latency_ms: float | None


class DashboardPublic(BaseModel):
    """Totals of the period, a per-day series and a per-model breakdown."""

    period: PeriodPublic
    users: UserCounts
    conversations: ConversationCounts
    messages: MessageCounts
    tokens: TokenCounts
    cost_usd: float
    latency: LatencyStats
    error_rate: float | None = Field(
        description="failed / (complete + failed) replies; null when there were none."
    )
    daily: list[DayPoint]
    models: list[ModelUsage]


class UserAnalyticsPublic(BaseModel):
    """One user's activity in the period, with all-time totals and last activity."""

    period: PeriodPublic
    user_id: str
    email: str | None
    external_id: str | None
    created_at: datetime
    conversations: int = Field(description="Conversations started in the period.")
    conversations_total: int = Field(description="Conversations the user has, all time.")
    messages: int = Field(description="Messages (user and assistant) in the period.")
    user_messages: int
    replies: int
    failed_replies: int
    tokens: TokenCounts
    cost_usd: float
    last_activity_at: datetime | None = Field(description="The user's latest message, all time.")
    daily: list[DayPoint]


class TopConversation(BaseModel):
    """A conversation in the top list, ranked by tokens."""

    id: str
    user_id: str
    title: str
    mode: str
    messages: int
    tokens: int
    cost_usd: float
    created_at: datetime


class ConversationAnalyticsPublic(BaseModel):
    """Conversations started in the period: size, turns, failures and the heaviest ones."""

    period: PeriodPublic
    count: int
    by_mode: dict[str, int]
    avg_messages: float
    max_messages: int
    avg_turns: float = Field(description="User messages per conversation.")
    failed_share: float = Field(description="Share of conversations with a failed reply.")
    top: list[TopConversation]
