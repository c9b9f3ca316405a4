"""Ratings of replies: one per message per rater (the owner, or a bot visitor's session)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from botgpt.conversations.models import Message, MessageFeedback
from botgpt.exceptions import InvalidInput
from botgpt.ids import utcnow
from botgpt.text import Text

Rating = Literal["up", "down"]


class FeedbackCreate(BaseModel):
    """A thumbs up or down on a reply, optionally with a comment; sending again changes it."""

    rating: Rating
    comment: Text | None = Field(default=None, max_length=2000)


class FeedbackPublic(BaseModel):
    """A stored rating."""

    message_id: str
    rating: Rating
    comment: str | None


async def rate(
    db: AsyncSession, message: Message, rater: str, body: FeedbackCreate
) -> MessageFeedback:
    """Record or change `rater`'s rating of an assistant message."""
    if message.role != "assistant":
        raise InvalidInput("Only replies can be rated.")
    found = await db.execute(
        select(MessageFeedback).where(
            MessageFeedback.message_id == message.id, MessageFeedback.rater == rater
        )
    )
    row = found.scalar_one_or_none()
    if row is None:
        row = MessageFeedback(message_id=message.id, rater=rater, created_at=utcnow())
        db.add(row)
    row.rating = body.rating
    row.comment = body.comment
    row.updated_at = utcnow()
    await db.commit()
    return row


def feedback_public(row: MessageFeedback) -> FeedbackPublic:
    """The API view of a rating."""
    return FeedbackPublic(message_id=row.message_id, rating=row.rating, comment=row.comment)
