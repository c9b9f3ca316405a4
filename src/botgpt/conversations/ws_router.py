"""WebSocket chat: the same turn events as SSE, both directions on one connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from botgpt.auth.service import Principal
from botgpt.container import Container
from botgpt.conversations.records import TurnRequest
from botgpt.conversations.schemas import Language, _normalise_mode
from botgpt.conversations.streams import StreamHub
from botgpt.conversations.turn import ChatService
from botgpt.errors import llm_error_payload
from botgpt.exceptions import AuthenticationFailed, DomainError
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


async def _authenticate(ws: WebSocket, c: Container) -> Principal:
    token = ws.query_params.get("token") or ws.query_params.get("api_key")
    header = ws.headers.get("authorization", "")
    if not token and header.lower().startswith("bearer "):
        token = header[7:]
    if not token:
        raise AuthenticationFailed("Authentication required: pass ?token= or a bearer header.")
    async with c.sessions() as db:
        principal: Principal = await c.auth.authenticate(db, token)
        return principal


@router.websocket("/api/v1/chat/ws")
@router.websocket("/api/v1/chat/ws/{user_id}")
async def chat_ws(ws: WebSocket) -> None:
    """Chat over a WebSocket: send `{"type":"message",...}`, receive turn events."""
    c: Container = ws.app.state.container
    try:
        principal = await _authenticate(ws, c)
    except DomainError as e:
        await ws.close(code=4401, reason=e.message)
        return
    await ws.accept()
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
            raw = await ws.receive_json()
            try:
                frame = WsMessage.model_validate(raw)
                if frame.type == "cancel" and frame.message_id:
                    hub.cancel(frame.message_id)
                    continue
                content = frame.content or ""
                async with c.sessions() as db:
                    owner = await c.auth.acting_user(db, principal, frame.user_id)
                turn = await chat.prepare(
                    TurnRequest(
                        owner,
                        content,
                        conversation_id=frame.conversation_id,
                        mode=frame.mode,
                        language=frame.language,
                    )
                )
            except ValidationError:
                await send(
                    {"type": "error", "data": {"code": "validation_error", "message": "Bad frame."}}
                )
                continue
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
