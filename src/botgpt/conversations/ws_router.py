"""WebSocket chat: the same turn events as SSE, both directions on one connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from sqlalchemy import select

from botgpt.auth.service import Principal
from botgpt.container import Container
from botgpt.conversations.models import Message
from botgpt.conversations.records import TurnRequest
from botgpt.conversations.router import owner_of
from botgpt.conversations.schemas import Language, _normalise_mode
from botgpt.conversations.streams import StreamHub
from botgpt.conversations.turn import ChatService
from botgpt.conversations.turn_router import stop_owned_reply
from botgpt.errors import llm_error_payload
from botgpt.exceptions import DomainError, NotFound, PermissionDenied
from botgpt.llm.errors import LLMError

log = logging.getLogger("botgpt.ws")
router = APIRouter(tags=["conversations"])


class WsMessage(BaseModel):
    """A client frame: send a message (new conversation without `conversation_id`) or cancel."""

    type: str = Field(pattern="^(message|cancel)$")
    content: str | None = Field(default=None, min_length=1, max_length=100_000)
    conversation_id: str | None = None
    message_id: str | None = None
    mode: str = "open"
    user_id: str | None = None
    language: Language = None

    _mode = field_validator("mode", mode="before")(_normalise_mode)

    @model_validator(mode="after")
    def _complete(self) -> WsMessage:
        if self.type == "message" and not self.content:
            raise ValueError("a message frame needs content")
        if self.type == "cancel" and not self.message_id:
            raise ValueError("a cancel frame needs message_id")
        return self


# A client that connects without a credential has this long to send its `auth` frame.
AUTH_TIMEOUT_SECONDS = 5.0
UNAUTHENTICATED = 4401
FORBIDDEN = 4403


def _url_credential(ws: WebSocket) -> str | None:
    token = ws.query_params.get("token") or ws.query_params.get("api_key")
    header = ws.headers.get("authorization", "")
    if not token and header.lower().startswith("bearer "):
        token = header[7:]
    return token or None


async def _first_frame_credential(ws: WebSocket) -> str | None:
    """The token of the client's first frame `{"type": "auth", "token": ...}`, if it sends one."""
    try:
        async with asyncio.timeout(AUTH_TIMEOUT_SECONDS):
            frame = await ws.receive_json()
    except (TimeoutError, ValueError, KeyError):
        return None
    if isinstance(frame, dict) and frame.get("type") == "auth":
        token = frame.get("token")
        if isinstance(token, str) and token:
            return token
    return None


async def _principal(c: Container, credential: str, path_user: str | None) -> Principal:
    """Authenticate; on `/ws/{user_id}` the credential must be that user's (or a service key)."""
    async with c.sessions() as db:
        principal: Principal = await c.auth.authenticate(db, credential)
        if path_user is not None:
            await c.auth.acting_user(db, principal, path_user)
        return principal


async def _connect(ws: WebSocket, c: Container) -> Principal | None:
    """Accept an authenticated connection; None once it is closed (4401 / 4403)."""
    path_user = ws.path_params.get("user_id")
    credential = _url_credential(ws)
    if credential is not None:
        try:
            principal = await _principal(c, credential, path_user)
        except DomainError as e:
            # A bad credential in the URL is refused at the handshake.
            code = FORBIDDEN if isinstance(e, PermissionDenied) else UNAUTHENTICATED
            await ws.close(code=code, reason=e.message)
            return None
        await ws.accept()
        return principal
    # No credential in the URL (seed 004's client): the first frame must carry it.
    await ws.accept()
    credential = await _first_frame_credential(ws)
    if credential is None:
        await ws.close(UNAUTHENTICATED, 'Send {"type": "auth", "token": ...} first.')
        return None
    try:
        principal = await _principal(c, credential, path_user)
    except PermissionDenied as e:
        await ws.close(FORBIDDEN, e.message)
        return None
    except DomainError as e:
        await ws.close(UNAUTHENTICATED, e.message)
        return None
    await ws.send_json({"type": "authenticated", "user_id": path_user or principal.user_id})
    return principal


async def _acting_owner(
    c: Container, principal: Principal, path_user: str | None, frame: WsMessage
) -> tuple[str, str | None]:
    """Whom a frame acts as (checked like the REST routes), and the conversation it is about."""
    async with c.sessions() as db:
        conversation_id = frame.conversation_id
        if frame.type == "cancel" and conversation_id is None:
            conversation_id = (
                await db.execute(
                    select(Message.conversation_id).where(Message.id == frame.message_id)
                )
            ).scalar()
            if conversation_id is None:
                raise NotFound("Message not found.")
        if conversation_id is None:
            owner = await c.auth.acting_user_of(db, principal, path_user, frame.user_id)
        else:
            owner = await c.auth.acting_owner(
                db, principal, owner_of(conversation_id), path_user, frame.user_id
            )
        return owner, conversation_id


async def _read_frame(ws: WebSocket) -> WsMessage | None:
    """The next client frame; None if it is not valid JSON of a known frame."""
    try:
        return WsMessage.model_validate(await ws.receive_json())
    except (ValidationError, ValueError, KeyError):  # KeyError: a binary frame
        return None


@router.websocket("/api/v1/chat/ws")
@router.websocket("/api/v1/chat/ws/{user_id}")
async def chat_ws(ws: WebSocket) -> None:
    """Chat over a WebSocket: send `{"type":"message",...}`, receive turn events."""
    c: Container = ws.app.state.container
    try:
        principal = await _connect(ws, c)
    except WebSocketDisconnect:
        return
    if principal is None:
        return
    path_user = ws.path_params.get("user_id")
    chat: ChatService = c.chat
    hub: StreamHub = c.streams
    streams: set[asyncio.Task[None]] = set()
    send_lock = asyncio.Lock()

    async def send(payload: dict[str, Any]) -> None:
        async with send_lock:
            await ws.send_json(payload)

    async def pump(message_id: str) -> None:
        live = hub.get(message_id)
        if live is None:
            return
        async for event_id, event in hub.subscribe(live):
            data = event.client_data()
            await send({"type": event.event, "id": event_id, "data": data})
            if event.event == "done":
                # The replaced system's clients wait for one "response" frame with the reply.
                message = data["assistant_message"]
                await send(
                    {
                        "type": "response",
                        "content": message["content"],
                        "conversation_id": live.turn.conversation_id,
                        "message_id": message["id"],
                        "timestamp": message["completed_at"],
                    }
                )

    try:
        while True:
            frame = await _read_frame(ws)
            if frame is None:
                await send(
                    {"type": "error", "data": {"code": "validation_error", "message": "Bad frame."}}
                )
                continue
            try:
                owner, conversation_id = await _acting_owner(c, principal, path_user, frame)
                if frame.type == "cancel" and frame.message_id and conversation_id:
                    status = await stop_owned_reply(c, conversation_id, owner, frame.message_id)
                    if status is None:
                        raise NotFound("Message not found.")
                    continue
                content = frame.content or ""
                turn = await chat.prepare(
                    TurnRequest(
                        owner,
                        content,
                        conversation_id=conversation_id,
                        mode=frame.mode,
                        language=frame.language,
                    )
                )
            except DomainError as e:
                await send({"type": "error", "data": {"code": e.code, "message": e.message}})
                continue
            except LLMError as e:
                await send({"type": "error", "data": llm_error_payload(e)})
                continue
            hub.start(turn)
            task = asyncio.create_task(pump(turn.assistant.id))
            streams.add(task)
            task.add_done_callback(streams.discard)
    except WebSocketDisconnect:
        pass
    finally:
        for task in list(streams):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
