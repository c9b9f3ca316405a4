"""Routes for conversations and their messages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status

from botgpt.conversations import service
from botgpt.conversations.schemas import (
    ConversationCreate,
    ConversationList,
    ConversationPublic,
    ConversationSummary,
    ConversationUpdate,
    MessageCreate,
    TurnPublic,
)
from botgpt.conversations.turn import ChatService
from botgpt.deps import ContainerDep, CurrentPrincipal, SessionDep
from botgpt.idempotency import request_fingerprint, run_once
from botgpt.openapi import errors_doc
from botgpt.pagination import PageDep

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key", description="Retries with the same key return the first result."
    ),
]
ActAs = Annotated[
    str | None, Query(max_length=200, description="Service keys only: the user to act for.")
]
TURN_ERRORS = errors_doc(401, 403, 404, 409, 422, 502, 503, 504)


def _chat(c: ContainerDep) -> ChatService:
    chat: ChatService = c.services["chat"]
    return chat


@router.post("", status_code=status.HTTP_201_CREATED, responses=TURN_ERRORS)
async def create_conversation(
    body: ConversationCreate,
    request: Request,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    idempotency_key: IdempotencyKey = None,
) -> TurnPublic:
    """Start a conversation with its first message; returns both messages of the turn."""
    owner = await c.auth.acting_user(db, principal, body.user_id)
    fingerprint = request_fingerprint("POST", request.url.path, body.model_dump(mode="json"))

    async def action() -> TurnPublic:
        chat = _chat(c)
        turn = await chat.start_conversation(owner, body.first_message, body.mode, body.title)
        return await chat.complete(turn)

    return await run_once(db, owner, idempotency_key, fingerprint, 201, action)  # type: ignore[return-value]


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


@router.get("/{conversation_id}", responses=errors_doc(401, 403, 404))
async def get_conversation(
    conversation_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> ConversationPublic:
    """A conversation with its full ordered history and usage."""
    owner = await c.auth.acting_user(db, principal, user_id)
    return await service.get_conversation(db, owner, conversation_id)


@router.patch("/{conversation_id}", responses=errors_doc(401, 403, 404, 422))
async def update_conversation(
    conversation_id: str,
    body: ConversationUpdate,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> ConversationSummary:
    """Rename or archive a conversation."""
    owner = await c.auth.acting_user(db, principal, user_id)
    return await service.update_conversation(db, owner, conversation_id, body)


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
    owner = await c.auth.acting_user(db, principal, user_id)
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
    idempotency_key: str | None,
    status_code: int,
) -> TurnPublic:
    owner = await c.auth.acting_user(db, principal, user_id)
    fingerprint = request_fingerprint(
        request.method, request.url.path, body.model_dump(mode="json")
    )

    async def action() -> TurnPublic:
        chat = _chat(c)
        return await chat.complete(await chat.send_message(owner, conversation_id, body.content))

    return await run_once(db, owner, idempotency_key, fingerprint, status_code, action)  # type: ignore[return-value]


@router.post(
    "/{conversation_id}/messages", status_code=status.HTTP_201_CREATED, responses=TURN_ERRORS
)
async def send_message(
    conversation_id: str,
    body: MessageCreate,
    request: Request,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
    idempotency_key: IdempotencyKey = None,
) -> TurnPublic:
    """Send a user message and get the assistant's reply."""
    return await _send(
        conversation_id, body, request, principal, db, c, user_id, idempotency_key, 201
    )


@router.put("/{conversation_id}/messages", responses=TURN_ERRORS)
async def put_message(
    conversation_id: str,
    body: MessageCreate,
    request: Request,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
    idempotency_key: IdempotencyKey = None,
) -> TurnPublic:
    """Send a user message (the replaced systems' PUT form); same as POST."""
    return await _send(
        conversation_id, body, request, principal, db, c, user_id, idempotency_key, 200
    )
