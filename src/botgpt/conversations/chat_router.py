"""POST /api/v1/chat/send: the replaced systems' one-call chat endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from botgpt.conversations.records import Turn, TurnRequest
from botgpt.conversations.router import (
    SSE_DOC,
    TURN_ERRORS,
    IdempotencyKey,
    StreamFlag,
    chat_service,
    respond,
)
from botgpt.conversations.schemas import ChatSend, ChatSendPublic
from botgpt.deps import ContainerDep, CurrentPrincipal, SessionDep

router = APIRouter(prefix="/api/v1/chat", tags=["conversations"])


@router.post("/send", responses={**TURN_ERRORS, **SSE_DOC}, response_model=ChatSendPublic)
async def send(
    body: ChatSend,
    request: Request,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    stream: StreamFlag = False,
    idempotency_key: IdempotencyKey = None,
) -> BaseModel | StreamingResponse:
    """Send a message: to `conversation_id`, or starting a new conversation without one."""
    owner = await c.auth.acting_user(db, principal, body.user_id)
    chat = chat_service(c)

    async def prepare() -> Turn:
        return await chat.prepare(
            TurnRequest(
                owner,
                body.content,
                conversation_id=body.conversation_id,
                mode=body.mode,
                document_ids=body.document_ids,
                language=body.language,
            )
        )

    return await respond(
        c,
        db,
        request,
        owner,
        body,
        stream or body.stream,
        idempotency_key,
        200,
        prepare,
        ChatSendPublic.of,
    )
