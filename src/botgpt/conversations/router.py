"""Routes for conversations and their messages (JSON or Server-Sent Events)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, cast

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy import Select, Table, bindparam, select

from botgpt.conversations import service
from botgpt.conversations.models import Conversation
from botgpt.conversations.records import Turn, TurnRequest
from botgpt.conversations.schemas import (
    ConversationCreate,
    ConversationList,
    ConversationPublic,
    ConversationSummary,
    ConversationUpdate,
    MessageCreate,
    TurnPublic,
    UsageTotals,
)
from botgpt.conversations.sse import live_response
from botgpt.conversations.streams import StreamHub
from botgpt.conversations.turn import ChatService
from botgpt.conversations.views import turn_public
from botgpt.deps import ActAs, ContainerDep, CurrentPrincipal, SessionDep, release
from botgpt.exceptions import InvalidInput
from botgpt.idempotency import request_fingerprint, run_once
from botgpt.openapi import SSE_EVENT_SCHEMA, errors_doc
from botgpt.pagination import PageDep

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])
# Seed 000's unprefixed paths: the same routes, not in the OpenAPI (/api/v1 is documented).
# Registered as routes of their own so that metrics and logs name the path that was called.
seed_router = APIRouter(prefix="/conversations", tags=["conversations"], include_in_schema=False)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key", description="Retries with the same key return the first result."
    ),
]
StreamFlag = Annotated[bool, Query(description="Answer as Server-Sent Events.")]
TURN_ERRORS = errors_doc(401, 403, 404, 409, 422, 429, 502, 503, 504)


def sse_doc(status_code: int = 200) -> dict[int | str, dict[str, Any]]:
    """The SSE response of a route answering `status_code` (FastAPI adds its JSON schema)."""
    return {
        status_code: {
            "description": "The turn as JSON; with stream=true a text/event-stream of start, "
            "delta, usage, done | error",
            "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
        }
    }


SSE_DOC = sse_doc(200)


_conversations = cast(Table, Conversation.__table__)
_OWNER_OF: Select[tuple[str]] = select(_conversations.c.user_id).where(
    _conversations.c.id == bindparam("conversation_id")
)


def owner_of(conversation_id: str) -> Select[str]:
    """Selects the owner of a conversation (for service keys acting on it by id)."""
    # Built on every request to a conversation, executed only for service keys: binding a
    # value to a prepared statement costs a few microseconds, building one about forty.
    return cast("Select[str]", _OWNER_OF.params(conversation_id=conversation_id))


def chat_service(c: ContainerDep) -> ChatService:
    """The app's chat service."""
    return c.chat


def stream_hub(c: ContainerDep) -> StreamHub:
    """The app's registry of live turns."""
    return c.streams


async def respond(
    c: ContainerDep,
    db: SessionDep,
    request: Request,
    owner: str,
    body: Any,
    stream: bool,
    idempotency_key: str | None,
    status_code: int,
    prepare: Callable[[], Awaitable[Turn]],
    present: Callable[[TurnPublic], BaseModel] | None = None,
) -> BaseModel | StreamingResponse:
    """Run a prepared turn as JSON (idempotent when keyed) or as an SSE stream.

    `present` shapes the JSON result (before it is stored for idempotent replays).
    """
    await release(db)  # the turn uses its own short transactions: hold nothing meanwhile
    if stream:
        if idempotency_key is not None:
            raise InvalidInput(
                "Idempotency-Key is not supported with stream=true; "
                "re-attach with GET .../messages/{id}/stream instead."
            )
        hub = stream_hub(c)
        return live_response(hub, hub.start(await prepare()), status_code=status_code)
    # Only a keyed request needs its fingerprint (and the body dumped for it).
    fingerprint = ""
    if idempotency_key is not None:
        payload = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
        fingerprint = request_fingerprint(request.method, request.url.path, payload)

    async def action() -> BaseModel:
        turn = turn_public(await chat_service(c).complete(await prepare()))
        return present(turn) if present is not None else turn

    return await run_once(db, owner, idempotency_key, fingerprint, status_code, action)


@seed_router.post("", status_code=status.HTTP_201_CREATED, response_model=TurnPublic)
@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={**TURN_ERRORS, **sse_doc(201)},
    response_model=TurnPublic,
)
async def create_conversation(
    body: ConversationCreate,
    request: Request,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    stream: StreamFlag = False,
    idempotency_key: IdempotencyKey = None,
) -> BaseModel | StreamingResponse:
    """Start a conversation with its first message; returns both messages of the turn."""
    owner = await c.auth.acting_user(db, principal, body.user_id)
    return await respond(
        c,
        db,
        request,
        owner,
        body,
        stream or body.stream,
        idempotency_key,
        201,
        lambda: chat_service(c).prepare(
            TurnRequest(
                owner,
                body.first_message,
                mode=body.mode,
                title=body.title,
                document_ids=body.document_ids,
                language=body.language,
            )
        ),
    )


@seed_router.get("")
@router.get("", responses=errors_doc(401, 403, 422))
async def list_conversations(
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    page: PageDep,
    user_id: ActAs = None,
    archived: Annotated[bool, Query(description="List archived conversations instead")] = False,
) -> ConversationList:
    """The caller's conversations, most recently active first, with a preview of each."""
    owner = await c.auth.acting_user(db, principal, user_id)
    return await service.list_conversations(db, owner, page, archived)


usage_router = APIRouter(prefix="/api/v1/users/me", tags=["auth"])


@usage_router.get("/usage", responses=errors_doc(401, 403))
async def my_usage(
    principal: CurrentPrincipal, db: SessionDep, c: ContainerDep, user_id: ActAs = None
) -> UsageTotals:
    """Tokens and cost over all of the caller's conversations."""
    owner = await c.auth.acting_user(db, principal, user_id)
    return await service.usage_totals(db, owner)


@seed_router.get("/{conversation_id}")
@router.get("/{conversation_id}", responses=errors_doc(401, 403, 404))
async def get_conversation(
    conversation_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> ConversationPublic:
    """A conversation with its full ordered history and usage."""
    owner = await c.auth.acting_owner(db, principal, owner_of(conversation_id), user_id)
    return await service.get_conversation(db, owner, conversation_id)


@seed_router.patch("/{conversation_id}")
@seed_router.put("/{conversation_id}")
@router.patch("/{conversation_id}", responses=errors_doc(401, 403, 404, 422))
@router.put(
    "/{conversation_id}",
    responses=errors_doc(401, 403, 404, 422),
    description="The replaced systems' PUT form of PATCH: the same partial update.",
)
async def update_conversation(
    conversation_id: str,
    body: ConversationUpdate,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> ConversationSummary:
    """Rename or archive a conversation."""
    owner = await c.auth.acting_owner(
        db, principal, owner_of(conversation_id), user_id, body.user_id
    )
    return await service.update_conversation(db, owner, conversation_id, body)


@seed_router.delete("/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
@router.delete(
    "/{conversation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors_doc(401, 403, 404),
)
async def delete_conversation(
    conversation_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> Response:
    """Delete a conversation and its messages."""
    owner = await c.auth.acting_owner(db, principal, owner_of(conversation_id), user_id)
    await service.delete_conversation(db, owner, conversation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _send(
    conversation_id: str,
    body: MessageCreate,
    request: Request,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: str | None,
    stream: bool,
    idempotency_key: str | None,
    status_code: int,
) -> BaseModel | StreamingResponse:
    owner = await c.auth.acting_owner(
        db, principal, owner_of(conversation_id), user_id, body.user_id
    )
    return await respond(
        c,
        db,
        request,
        owner,
        body,
        stream or body.stream,
        idempotency_key,
        status_code,
        lambda: chat_service(c).prepare(
            TurnRequest(
                owner,
                body.content,
                conversation_id=conversation_id,
                document_ids=body.document_ids,
                language=body.language,
            )
        ),
    )


@seed_router.post(
    "/{conversation_id}/messages", status_code=status.HTTP_201_CREATED, response_model=TurnPublic
)
@router.post(
    "/{conversation_id}/messages",
    status_code=status.HTTP_201_CREATED,
    responses={**TURN_ERRORS, **sse_doc(201)},
    response_model=TurnPublic,
)
async def send_message(
    conversation_id: str,
    body: MessageCreate,
    request: Request,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
    stream: StreamFlag = False,
    idempotency_key: IdempotencyKey = None,
) -> BaseModel | StreamingResponse:
    """Send a user message and get the assistant's reply (JSON, or SSE with stream=true)."""
    return await _send(
        conversation_id, body, request, principal, db, c, user_id, stream, idempotency_key, 201
    )


@seed_router.put("/{conversation_id}/messages", response_model=TurnPublic)
@router.put(
    "/{conversation_id}/messages", responses={**TURN_ERRORS, **SSE_DOC}, response_model=TurnPublic
)
async def put_message(
    conversation_id: str,
    body: MessageCreate,
    request: Request,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
    stream: StreamFlag = False,
    idempotency_key: IdempotencyKey = None,
) -> BaseModel | StreamingResponse:
    """Send a user message (the replaced systems' PUT form); same as POST."""
    return await _send(
        conversation_id, body, request, principal, db, c, user_id, stream, idempotency_key, 200
    )
