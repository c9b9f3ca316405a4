"""Routes that act on one reply: regenerate, cancel, and (re-)attach to its stream."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from botgpt.conversations import store
from botgpt.conversations.records import TurnEvent, TurnRequest
from botgpt.conversations.router import (
    SSE_DOC,
    TURN_ERRORS,
    IdempotencyKey,
    StreamFlag,
    chat_service,
    respond,
    sse_doc,
    stream_hub,
)
from botgpt.conversations.schemas import CancelPublic, TurnPublic
from botgpt.conversations.sse import (
    HEARTBEAT_SECONDS,
    live_response,
    remote_response,
    replay_response,
)
from botgpt.conversations.views import message_public
from botgpt.deps import ActAs, ContainerDep, CurrentPrincipal, SessionDep
from botgpt.exceptions import NotFound
from botgpt.openapi import errors_doc

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])


@router.post(
    "/{conversation_id}/messages/{message_id}/regenerate",
    status_code=status.HTTP_201_CREATED,
    responses={**TURN_ERRORS, **sse_doc(201)},
    response_model=TurnPublic,
)
async def regenerate(
    conversation_id: str,
    message_id: str,
    request: Request,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
    stream: StreamFlag = False,
    idempotency_key: IdempotencyKey = None,
) -> BaseModel | StreamingResponse:
    """Write a new reply to the latest question; the previous reply is kept, superseded."""
    owner = await c.auth.acting_user(db, principal, user_id)
    return await respond(
        c,
        db,
        request,
        owner,
        {"message_id": message_id},
        stream,
        idempotency_key,
        201,
        lambda: chat_service(c).prepare(
            TurnRequest(owner, conversation_id=conversation_id, regenerate=message_id)
        ),
    )


@router.post("/{conversation_id}/messages/{message_id}/cancel", responses=errors_doc(401, 403, 404))
async def cancel(
    conversation_id: str,
    message_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> CancelPublic:
    """Stop a reply being generated; it keeps the text so far with status `cancelled`."""
    owner = await c.auth.acting_user(db, principal, user_id)
    status = await stream_hub(c).stop_reply(conversation_id, owner, message_id)
    if status is None:
        raise NotFound("Message not found.")
    return CancelPublic(message_id=message_id, status=status)


@router.get(
    "/{conversation_id}/messages/{message_id}/stream",
    responses={**errors_doc(401, 403, 404), **SSE_DOC},
)
async def attach(
    conversation_id: str,
    message_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
    last_event_id: Annotated[int, Header(alias="Last-Event-ID", ge=0)] = 0,
) -> StreamingResponse:
    """(Re-)attach to a reply's event stream; events after `Last-Event-ID` are sent."""
    owner = await c.auth.acting_user(db, principal, user_id)
    hub = stream_hub(c)
    live = hub.get(message_id)
    if live is not None and live.turn.owner_id == owner:
        return live_response(hub, live, last_event_id)
    row = await chat_service(c).runner.run(
        lambda conn: store.load_message(conn, conversation_id, owner, message_id)
    )
    if row is None or row.role != "assistant":
        raise NotFound("Message not found.")
    if row.status in ("pending", "streaming"):
        remote = await hub.remote_events(message_id, last_event_id, HEARTBEAT_SECONDS)
        if remote is not None:
            return remote_response(remote)
    message = message_public(row)
    ids = {"conversation_id": conversation_id, "assistant_message_id": message_id}
    events = [
        (1, TurnEvent("start", ids)),
        (2, TurnEvent("delta", {"text": message.content})),
    ]
    if message.status == "failed" and message.error is not None:
        events.append((3, TurnEvent("error", message.error.model_dump())))
    elif message.status == "complete":
        events.append((3, TurnEvent("usage", {"usage": message.usage})))
        events.append((4, TurnEvent("done", {"assistant_message": message})))
    else:
        events.append((3, TurnEvent(message.status, {"assistant_message": message})))
    return replay_response(e for e in events if e[0] > last_event_id)
