"""Read-only analytics routes: for admins and analysts, and each bot for its owner."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from botgpt.analytics import bots as bot_stats
from botgpt.analytics import service
from botgpt.analytics.bots import BotAnalyticsPublic
from botgpt.analytics.schemas import (
    ConversationAnalyticsPublic,
    DashboardPublic,
    UserAnalyticsPublic,
)
from botgpt.analytics.service import Period
from botgpt.auth.service import Principal
from botgpt.deps import ContainerDep, CurrentPrincipal, SessionDep
from botgpt.exceptions import PermissionDenied
from botgpt.openapi import errors_doc

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

ERRORS = errors_doc(401, 403, 422)


async def require_admin(principal: CurrentPrincipal) -> Principal:
    """The caller, who must be an admin or an analyst (analytics are read-only)."""
    if not (principal.is_admin or principal.role == "analyst"):
        raise PermissionDenied("Analytics are for admins and analysts only.")
    return principal


async def period_params(
    since: Annotated[
        datetime | None, Query(description="Start (ISO datetime, UTC if naive); default until-30d")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="End, exclusive (ISO datetime); default now")
    ] = None,
) -> Period:
    """Read `since`/`until`: since < until, at most 366 days apart."""
    return service.make_period(since, until)


AdminDep = Annotated[Principal, Depends(require_admin)]
PeriodDep = Annotated[Period, Depends(period_params)]


@router.get("/dashboard", responses=ERRORS)
async def dashboard(_: AdminDep, db: SessionDep, period: PeriodDep) -> DashboardPublic:
    """Users, conversations, replies, tokens, cost, latency and errors; per day and per model."""
    return await service.dashboard(db, period)


@router.get("/users/{user_id}", responses=errors_doc(401, 403, 404, 422))
@router.get(
    "/user/{user_id}",
    responses=errors_doc(401, 403, 404, 422),
    description="The seed's path of GET /api/v1/analytics/users/{user_id}: the same.",
)
async def user_analytics(
    user_id: str, _: AdminDep, db: SessionDep, period: PeriodDep
) -> UserAnalyticsPublic:
    """One user's conversations, messages, tokens, cost, last activity and per-day series."""
    return await service.user_analytics(db, period, user_id)


@router.get("/conversations", responses=ERRORS)
async def conversation_analytics(
    _: AdminDep,
    db: SessionDep,
    period: PeriodDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Size of the top list")] = 10,
) -> ConversationAnalyticsPublic:
    """Conversations of the period: by mode, sizes, turns, failure share, top by tokens."""
    return await service.conversation_analytics(db, period, limit)


@router.get("/bots/{bot_id}", responses=errors_doc(401, 403, 404, 422))
async def bot_analytics(
    bot_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    period: PeriodDep,
) -> BotAnalyticsPublic:
    """One bot's sessions, messages, tokens, cost, latency, FAQ and not-found rates, feedback.

    For the bot's owner, and for admins and analysts.
    """
    assert c.bots is not None
    if principal.is_admin or principal.role == "analyst":
        found = await c.bots.find(db, bot_id)
    else:
        found = await c.bots.get(db, principal.user_id, bot_id)
    return await bot_stats.bot_analytics(db, found.id, period)
