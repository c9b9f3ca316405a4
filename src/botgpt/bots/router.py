"""Routes for bots: CRUD, versions and restore, the signing secret (also under /api/bots)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status
from sqlalchemy import Select, select

from botgpt.analytics import bots as bot_stats
from botgpt.analytics.bots import UnansweredList
from botgpt.bots.models import Bot, BotVersion
from botgpt.bots.schemas import (
    BotCreate,
    BotCreated,
    BotList,
    BotPublic,
    BotUpdate,
    BotVersionList,
    BotVersionPublic,
    BotWidget,
    Deployment,
    SigningSecret,
)
from botgpt.bots.service import BotService
from botgpt.deps import ActAs, ContainerDep, CurrentPrincipal, SessionDep
from botgpt.openapi import errors_doc
from botgpt.pagination import PageDep

# Included twice by the app: under /api/v1 and, hidden from the docs, under /api (seed 003).
router = APIRouter(prefix="/bots", tags=["bots"])


def bot_service(c: ContainerDep) -> BotService:
    """The app's bot service."""
    assert c.bots is not None, "the bots service is built with the app"
    return c.bots


BotServiceDep = Annotated[BotService, Depends(bot_service)]


def deployment(request: Request, bot_id: str) -> Deployment:
    """The chat page URL and the embed snippet, on the address the owner called."""
    base = str(request.base_url).rstrip("/")
    widget = f"{base}/widget.js"
    return Deployment(
        chat_url=f"{base}/chat/{bot_id}",
        widget_url=widget,
        embed_code=f'<script src="{widget}" data-bot-id="{bot_id}" async></script>',
    )


def bot_public(request: Request, bot: Bot, document_ids: list[str]) -> BotPublic:
    """The owner's view of a bot."""
    return BotPublic(
        id=bot.id,
        user_id=bot.owner_id,
        name=bot.name,
        description=bot.description,
        system_prompt=bot.system_prompt,
        provider=bot.provider,
        model=bot.model,
        base_url=bot.base_url,
        temperature=bot.temperature,
        max_tokens=bot.max_tokens,
        has_api_key=bot.api_key_encrypted is not None,
        api_key_last4=bot.api_key_last4,
        document_ids=document_ids,
        grounded=bool(document_ids),
        top_k=bot.top_k,
        min_score=bot.min_score,
        memory_messages=bot.memory_messages,
        faq_first=bot.faq_first,
        faq_threshold=bot.faq_threshold,
        answer_cache=bot.answer_cache,
        welcome_message=bot.welcome_message,
        starters=[str(s) for s in bot.starters],
        widget=BotWidget(**bot.widget),
        allowed_origins=[str(o) for o in bot.allowed_origins],
        active=bot.active,
        session_message_cap=bot.session_message_cap,
        daily_message_cap=bot.daily_message_cap,
        version=bot.version,
        deployment=deployment(request, bot.id),
        created_at=bot.created_at,
        updated_at=bot.updated_at,
    )


async def shown(request: Request, db: SessionDep, bots: BotService, bot: Bot) -> BotPublic:
    """The owner's view of a bot, with its documents."""
    return bot_public(request, bot, await bots.document_ids(db, bot.id))


def version_public(version: BotVersion) -> BotVersionPublic:
    """A version without the key's ciphertext."""
    shown = {k: v for k, v in version.snapshot.items() if k != "api_key_encrypted"}
    shown["has_api_key"] = version.snapshot.get("api_key_encrypted") is not None
    return BotVersionPublic(
        number=version.number,
        created_by=version.created_by,
        created_at=version.created_at,
        changed=[str(c) for c in version.changed],
        settings=shown,
    )


def owner_of(bot_id: str) -> Select[str]:
    """Selects the owner of a bot (for service keys acting on it by id)."""
    return select(Bot.owner_id).where(Bot.id == bot_id)


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors_doc(401, 403, 404, 422))
async def create_bot(
    body: BotCreate,
    request: Request,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    bots: BotServiceDep,
    user_id: ActAs = None,
) -> BotCreated:
    """Create a bot; the answer has its chat URL, embed code and signing secret (once)."""
    owner = await c.auth.acting_user_of(db, principal, user_id, body.user_id)
    bot, document_ids, signing = await bots.create(db, owner, body)
    public = bot_public(request, bot, document_ids)
    return BotCreated(**public.model_dump(), signing_secret=signing)


@router.get("", responses=errors_doc(401, 403, 422))
async def list_bots(
    request: Request,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    bots: BotServiceDep,
    page: PageDep,
    user_id: ActAs = None,
) -> BotList:
    """The caller's bots, newest first."""
    owner = await c.auth.acting_user(db, principal, user_id)
    rows, total = await bots.list_bots(db, owner, page)
    items = [bot_public(request, b, await bots.document_ids(db, b.id)) for b in rows]
    return BotList(
        items=items, total=total, page=page.page, limit=page.limit, pages=page.pages(total)
    )


@router.get("/{bot_id}", responses=errors_doc(401, 403, 404))
async def get_bot(
    bot_id: str,
    request: Request,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    bots: BotServiceDep,
    user_id: ActAs = None,
) -> BotPublic:
    """One of the caller's bots."""
    owner = await c.auth.acting_owner(db, principal, owner_of(bot_id), user_id)
    bot = await bots.get(db, owner, bot_id)
    return await shown(request, db, bots, bot)


@router.patch("/{bot_id}", responses=errors_doc(401, 403, 404, 422))
@router.put(
    "/{bot_id}",
    responses=errors_doc(401, 403, 404, 422),
    description="The same partial update as PATCH: only the fields sent change.",
)
async def update_bot(
    bot_id: str,
    body: BotUpdate,
    request: Request,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    bots: BotServiceDep,
    user_id: ActAs = None,
) -> BotPublic:
    """Change a bot; a new prompt, model or provider setting makes a new version."""
    owner = await c.auth.acting_owner(db, principal, owner_of(bot_id), user_id)
    bot = await bots.update(db, principal.user_id, owner, bot_id, body)
    return await shown(request, db, bots, bot)


@router.delete(
    "/{bot_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors_doc(401, 403, 404)
)
async def delete_bot(
    bot_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    bots: BotServiceDep,
    user_id: ActAs = None,
) -> Response:
    """Delete a bot and its conversations (its documents stay)."""
    owner = await c.auth.acting_owner(db, principal, owner_of(bot_id), user_id)
    await bots.delete(db, owner, bot_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{bot_id}/versions", responses=errors_doc(401, 403, 404, 422))
async def list_versions(
    bot_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    bots: BotServiceDep,
    page: PageDep,
    user_id: ActAs = None,
) -> BotVersionList:
    """The bot's numbered versions, newest first: who changed what, and when."""
    owner = await c.auth.acting_owner(db, principal, owner_of(bot_id), user_id)
    rows, total = await bots.versions(db, owner, bot_id, page)
    return BotVersionList(
        items=[version_public(v) for v in rows],
        total=total,
        page=page.page,
        limit=page.limit,
        pages=page.pages(total),
    )


@router.post("/{bot_id}/versions/{number}/restore", responses=errors_doc(401, 403, 404, 422))
async def restore_version(
    bot_id: str,
    number: Annotated[int, Path(ge=1)],
    request: Request,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    bots: BotServiceDep,
    user_id: ActAs = None,
) -> BotPublic:
    """Bring back a version's prompt and model settings (recorded as a new version)."""
    owner = await c.auth.acting_owner(db, principal, owner_of(bot_id), user_id)
    bot = await bots.restore(db, principal.user_id, owner, bot_id, number)
    return await shown(request, db, bots, bot)


@router.post("/{bot_id}/signing-secret", responses=errors_doc(401, 403, 404))
async def rotate_signing_secret(
    bot_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    bots: BotServiceDep,
    user_id: ActAs = None,
) -> SigningSecret:
    """Replace the visitor-signing secret (shown once); old signatures stop verifying."""
    owner = await c.auth.acting_owner(db, principal, owner_of(bot_id), user_id)
    return SigningSecret(signing_secret=await bots.rotate_signing_secret(db, owner, bot_id))


@router.get("/{bot_id}/unanswered", responses=errors_doc(401, 403, 404, 422))
async def unanswered(
    bot_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    bots: BotServiceDep,
    page: PageDep,
    user_id: ActAs = None,
) -> UnansweredList:
    """Questions the bot could not answer from its documents or whose reply got a thumbs
    down, newest first: what to add as an FAQ or a document."""
    owner = await c.auth.acting_owner(db, principal, owner_of(bot_id), user_id)
    bot = await bots.get(db, owner, bot_id)
    return await bot_stats.unanswered(db, bot.id, page)
