"""Routes for webhooks: create, list, get, update, delete, deliveries, and a test ping."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from botgpt.deps import ActAs, ContainerDep, CurrentPrincipal, SessionDep
from botgpt.openapi import errors_doc
from botgpt.pagination import PageDep
from botgpt.webhooks.models import Webhook, WebhookDelivery
from botgpt.webhooks.schemas import (
    DeliveryList,
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookPublic,
    WebhookUpdate,
)
from botgpt.webhooks.service import Dispatcher, WebhookService

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


def webhook_service(c: ContainerDep) -> WebhookService:
    """The webhook service over the app's settings."""
    return WebhookService(c.settings)


def webhook_public(hook: Webhook) -> WebhookPublic:
    """The API view of a webhook row (without its secret)."""
    return WebhookPublic(
        id=hook.id,
        user_id=hook.owner_id,
        url=hook.url,
        events=[str(e) for e in hook.events],
        active=hook.active,
        created_at=hook.created_at,
        updated_at=hook.updated_at,
    )


def delivery_public(delivery: WebhookDelivery) -> DeliveryPublic:
    """The API view of a delivery row."""
    return DeliveryPublic.model_validate(delivery, from_attributes=True)


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors_doc(401, 403, 409, 422))
async def create_webhook(
    body: WebhookCreate,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> WebhookCreated:
    """Create a webhook; the response shows its signing secret, this once only."""
    owner = await c.auth.acting_user_of(db, principal, user_id, body.user_id)
    hook = await webhook_service(c).create(db, owner, body)
    dispatcher: Dispatcher = c.webhooks
    dispatcher.watch(owner)
    return WebhookCreated(**webhook_public(hook).model_dump(), secret=hook.secret)


@router.get("", responses=errors_doc(401, 403, 422))
async def list_webhooks(
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    page: PageDep,
    user_id: ActAs = None,
) -> WebhookList:
    """The caller's webhooks, newest first."""
    owner = await c.auth.acting_user(db, principal, user_id)
    hooks, total = await webhook_service(c).list_webhooks(db, owner, page)
    return WebhookList(
        items=[webhook_public(h) for h in hooks],
        total=total,
        page=page.page,
        limit=page.limit,
        pages=page.pages(total),
    )


@router.get("/{webhook_id}", responses=errors_doc(401, 403, 404))
async def get_webhook(
    webhook_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> WebhookPublic:
    """One of the caller's webhooks."""
    owner = await c.auth.acting_user(db, principal, user_id)
    return webhook_public(await webhook_service(c).get(db, owner, webhook_id))


@router.patch("/{webhook_id}", responses=errors_doc(401, 403, 404, 422))
async def update_webhook(
    webhook_id: str,
    body: WebhookUpdate,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> WebhookPublic:
    """Change a webhook's URL, events or active flag (only the fields sent)."""
    owner = await c.auth.acting_user(db, principal, user_id)
    hook = await webhook_service(c).update(db, owner, webhook_id, body)
    if hook.active:
        dispatcher: Dispatcher = c.webhooks
        dispatcher.watch(owner)
    return webhook_public(hook)


@router.delete(
    "/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors_doc(401, 403, 404)
)
async def delete_webhook(
    webhook_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> Response:
    """Delete a webhook and its delivery log."""
    owner = await c.auth.acting_user(db, principal, user_id)
    await webhook_service(c).delete(db, owner, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", responses=errors_doc(401, 403, 404, 422))
async def list_deliveries(
    webhook_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    page: PageDep,
    user_id: ActAs = None,
) -> DeliveryList:
    """The webhook's deliveries, newest first."""
    owner = await c.auth.acting_user(db, principal, user_id)
    rows, total = await webhook_service(c).deliveries(db, owner, webhook_id, page)
    return DeliveryList(
        items=[delivery_public(d) for d in rows],
        total=total,
        page=page.page,
        limit=page.limit,
        pages=page.pages(total),
    )


@router.post(
    "/{webhook_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors_doc(401, 403, 404),
)
async def test_webhook(
    webhook_id: str,
    principal: CurrentPrincipal,
    db: SessionDep,
    c: ContainerDep,
    user_id: ActAs = None,
) -> DeliveryPublic:
    """Queue a `ping` delivery to the webhook; follow it in the deliveries list."""
    owner = await c.auth.acting_user(db, principal, user_id)
    delivery = await webhook_service(c).queue_ping(db, owner, webhook_id)
    dispatcher: Dispatcher = c.webhooks
    dispatcher.schedule(delivery.id)
    return delivery_public(delivery)
