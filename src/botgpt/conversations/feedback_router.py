"""The owner's rating of a reply in one of their conversations (bots' visitors rate through
the public chat API)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from botgpt.conversations import service
from botgpt.conversations.feedback import FeedbackCreate, FeedbackPublic, feedback_public, rate
from botgpt.conversations.models import Message
from botgpt.deps import ActAs, ContainerDep, CurrentPrincipal, SessionDep
from botgpt.exceptions import NotFound
from botgpt.openapi import errors_doc

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])


@router.post(
    "/{conversation_id}/messages/{message_id}/feedback", responses=errors_doc(401, 403, 404, 422)
)
async def rate_reply(
    conversation_id: str,
    message_id: str,
    body: FeedbackCreate,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> FeedbackPublic:
    """Rate a reply up or down (one rating per rater; sending again changes it)."""
    owner = await c.auth.acting_user(db, principal, user_id)
    conv = await service.get_owned(db, owner, conversation_id)
    found = await db.execute(
        select(Message).where(Message.id == message_id, Message.conversation_id == conv.id)
    )
    message = found.scalar_one_or_none()
    if message is None:
        raise NotFound("Message not found.")
    return feedback_public(await rate(db, message, f"owner:{owner}", body))
