"""Routes of the public chat (no account): a bot's face, visitor turns, history, feedback.

Included under /api/v1/chat and, hidden from the docs, under seed 003's /api/chat.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from botgpt.bots.public import PublicChat
from botgpt.bots.public_schemas import (
    BotConfigPublic,
    PublicMessage,
    PublicReply,
    SessionHistory,
    VisitorFeedback,
)
from botgpt.conversations.feedback import FeedbackPublic, feedback_public
from botgpt.conversations.router import StreamFlag, sse_doc
from botgpt.conversations.sse import live_response
from botgpt.conversations.views import message_public
from botgpt.deps import ContainerDep
from botgpt.openapi import errors_doc

router = APIRouter(tags=["public chat"])
BotId = Annotated[str, Path(max_length=36, description="The bot's id.")]
SessionPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{16,64}$")]


def public_chat(c: ContainerDep) -> PublicChat:
    """The app's public chat service."""
    return c.public_chat


PublicChatDep = Annotated[PublicChat, Depends(public_chat)]


@router.get("/{bot_id}/config", responses=errors_doc(403, 404))
async def bot_config(bot_id: BotId, public: PublicChatDep) -> BotConfigPublic:
    """The bot's public face: name, welcome message, starter questions, widget look."""
    return await public.config(bot_id)


@router.post(
    "/{bot_id}",
    responses={**errors_doc(400, 401, 403, 404, 409, 413, 422, 429, 502, 503, 504), **sse_doc()},
    response_model=PublicReply,
)
async def visitor_message(
    bot_id: BotId,
    body: PublicMessage,
    request: Request,
    response: Response,
    public: PublicChatDep,
    c: ContainerDep,
    stream: StreamFlag = False,
) -> BaseModel | StreamingResponse:
    """Send a visitor's message to a bot; a new session id is issued when none is sent."""
    address = request.client.host if request.client else "unknown"
    visitor = await public.prepare(bot_id, body, address)
    headers = {"X-Session-ID": visitor.session_id}
    if stream or body.stream:
        live = c.streams.start(visitor.turn)
        if live.task is not None:  # the owner's webhooks hear of the reply once it is done
            live.task.add_done_callback(lambda _task: public.answered(visitor))
        streamed = live_response(c.streams, live)
        streamed.headers.update(headers)
        return streamed
    response.headers.update(headers)
    result = await c.chat.complete(visitor.turn)
    public.answered(visitor)
    reply = message_public(result.assistant)
    return PublicReply(
        session_id=visitor.session_id,
        conversation_id=result.conversation_id,
        message_id=reply.id,
        user_message_id=result.user.id,
        response=reply.content,
        status=reply.status,
        source=reply.source,
        citations=reply.citations,
        suggested_questions=list(visitor.bot.starters) if visitor.first else [],
        created_at=reply.created_at,
    )


@router.get("/{bot_id}/session/{session_id}", responses=errors_doc(403, 404, 422))
async def session_history(
    bot_id: BotId, session_id: SessionPath, public: PublicChatDep
) -> SessionHistory:
    """The messages of a visitor session, oldest first (a reloaded page shows them again)."""
    conversation_id, messages = await public.history(bot_id, session_id)
    return SessionHistory(
        session_id=session_id,
        conversation_id=conversation_id,
        messages=[message_public(m, with_manifest=False) for m in messages],
    )


@router.delete(
    "/{bot_id}/session/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors_doc(403, 404, 422),
)
async def clear_session(bot_id: BotId, session_id: SessionPath, public: PublicChatDep) -> Response:
    """Forget a visitor session and its messages."""
    await public.clear(bot_id, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{bot_id}/messages/{message_id}/feedback", responses=errors_doc(403, 404, 422))
async def visitor_feedback(
    bot_id: BotId, message_id: str, body: VisitorFeedback, public: PublicChatDep
) -> FeedbackPublic:
    """A visitor's thumbs up or down on a reply of their own session."""
    return feedback_public(await public.feedback(bot_id, message_id, body))
