"""Webhooks: the owners' CRUD, and the dispatcher that turns events into signed POSTs.

`Dispatcher.emit` is the app's event sink: it only queues the event. A sender task looks up
the owner's active webhooks subscribed to it, records a `pending` delivery for each and sends
them (each delivery in its own task, retried with exponential backoff). Pending deliveries a
stopped process left behind are sent again when the dispatcher next starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from botgpt.config import Settings
from botgpt.exceptions import Conflict, InvalidInput, NotFound
from botgpt.ids import new_id, utcnow
from botgpt.pagination import Page
from botgpt.webhooks import urls
from botgpt.webhooks.models import DELIVERED, FAILED, PENDING, Webhook, WebhookDelivery
from botgpt.webhooks.schemas import WebhookCreate, WebhookUpdate

log = logging.getLogger("botgpt.webhooks")
# How soon webhooks created or changed in other processes start receiving events here.
OWNERS_REFRESH_SECONDS = 5.0

MAX_WEBHOOKS_PER_OWNER = 20
PING = "ping"
USER_AGENT = "botgpt-webhooks"
_ERROR_CHARS = 200


def new_secret() -> str:
    """A random signing secret."""
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, body: bytes) -> str:
    """The X-BotGPT-Signature value of `body`: sha256=<hex HMAC-SHA256 with `secret`>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def check_url(url: str, allow_private: bool) -> None:
    """Refuse (InvalidInput) a URL that is or resolves to a non-public address."""
    try:
        await urls.check_resolved(url, allow_private)
    except urls.UnsafeUrl as exc:
        raise InvalidInput(
            f"Webhook URLs may not point at private addresses: {exc}.", details={"url": url}
        ) from exc


class WebhookService:
    """The webhooks of each owner; another owner's webhook is reported as missing."""

    def __init__(self, settings: Settings, max_per_owner: int = MAX_WEBHOOKS_PER_OWNER) -> None:
        self.settings = settings
        self.max_per_owner = max_per_owner

    async def create(self, db: AsyncSession, owner_id: str, body: WebhookCreate) -> Webhook:
        """Store a new webhook with a fresh secret (409 when the owner has too many)."""
        await check_url(body.url, self.settings.webhooks_allow_private)
        count = await db.execute(select(func.count()).where(Webhook.owner_id == owner_id))
        if int(count.scalar_one()) >= self.max_per_owner:
            raise Conflict(
                f"An owner may keep at most {self.max_per_owner} webhooks; delete some first.",
                details={"limit": self.max_per_owner},
            )
        hook = Webhook(
            owner_id=owner_id,
            url=body.url,
            secret=new_secret(),
            events=list(body.events),
            active=body.active,
        )
        db.add(hook)
        await db.commit()
        log.info("webhook created", extra={"webhook_id": hook.id})
        return hook

    async def get(self, db: AsyncSession, owner_id: str, webhook_id: str) -> Webhook:
        """One of the owner's webhooks; anyone else's is reported as missing."""
        hook = await db.get(Webhook, webhook_id)
        if hook is None or hook.owner_id != owner_id:
            raise NotFound("Webhook not found.")
        return hook

    async def list_webhooks(
        self, db: AsyncSession, owner_id: str, page: Page
    ) -> tuple[list[Webhook], int]:
        """The owner's webhooks, newest first, with the total count."""
        where = Webhook.owner_id == owner_id
        total = int((await db.execute(select(func.count()).where(where))).scalar_one())
        rows = await db.execute(
            select(Webhook)
            .where(where)
            .order_by(Webhook.created_at.desc(), Webhook.id.desc())
            .offset(page.offset)
            .limit(page.limit)
        )
        return list(rows.scalars()), total

    async def update(
        self, db: AsyncSession, owner_id: str, webhook_id: str, body: WebhookUpdate
    ) -> Webhook:
        """Apply the fields sent."""
        hook = await self.get(db, owner_id, webhook_id)
        changes = body.model_dump(exclude_unset=True)
        if "url" in changes:
            await check_url(changes["url"], self.settings.webhooks_allow_private)
        for field, value in changes.items():
            setattr(hook, field, list(value) if field == "events" else value)
        if changes:
            hook.updated_at = utcnow()
        await db.commit()
        return hook

    async def delete(self, db: AsyncSession, owner_id: str, webhook_id: str) -> None:
        """Delete one of the owner's webhooks with its deliveries."""
        hook = await self.get(db, owner_id, webhook_id)
        await db.delete(hook)
        await db.commit()
        log.info("webhook deleted", extra={"webhook_id": webhook_id})

    async def deliveries(
        self, db: AsyncSession, owner_id: str, webhook_id: str, page: Page
    ) -> tuple[list[WebhookDelivery], int]:
        """The webhook's deliveries, newest first, with the total count."""
        await self.get(db, owner_id, webhook_id)
        where = WebhookDelivery.webhook_id == webhook_id
        total = int((await db.execute(select(func.count()).where(where))).scalar_one())
        rows = await db.execute(
            select(WebhookDelivery)
            .where(where)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
            .offset(page.offset)
            .limit(page.limit)
        )
        return list(rows.scalars()), total

    async def queue_ping(self, db: AsyncSession, owner_id: str, webhook_id: str) -> WebhookDelivery:
        """Record a pending `ping` delivery to the webhook (the dispatcher sends it)."""
        hook = await self.get(db, owner_id, webhook_id)
        delivery = WebhookDelivery(
            webhook_id=hook.id,
            event=PING,
            payload={"webhook_id": hook.id},
            status=PENDING,
            attempts=0,
        )
        db.add(delivery)
        await db.commit()
        return delivery


@dataclass(frozen=True, slots=True)
class _Event:
    owner_id: str
    event: str
    data: dict[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class _Outcome:
    delivered: bool
    retry: bool
    status_code: int | None
    error: str | None


def body_of(delivery: WebhookDelivery) -> bytes:
    """The JSON body POSTed for a delivery."""
    document = {
        "id": delivery.id,
        "event": delivery.event,
        "created_at": delivery.created_at.isoformat(),
        "data": delivery.payload,
    }
    return json.dumps(document, separators=(",", ":"), default=str).encode()


class Dispatcher:
    """Sends events to the matching webhooks in the background; `emit` never blocks or raises."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        base_delay: float = 1.0,
        max_attempts: int = 5,
        timeout: float = 10.0,
        senders: int = 2,
        max_in_flight: int = 50,
        max_queued: int = 10_000,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.base_delay = base_delay
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.senders = senders
        self.max_in_flight = max_in_flight
        self.max_queued = max_queued
        self._queue: asyncio.Queue[_Event | str] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slots: asyncio.Semaphore | None = None
        self._client: httpx.AsyncClient | None = None
        # Owners with an active webhook (None until first loaded): most turns concern users
        # without any, and must not cost a database query each.
        self._owners: set[str] | None = None

    @property
    def running(self) -> bool:
        """Whether the sender tasks are running."""
        return bool(self._tasks)

    # -- the event sink ---------------------------------------------------------------------
    def emit(self, owner_id: str, event: str, data: dict[str, Any]) -> None:
        """Queue an event for the owner's webhooks; returns at once and never raises."""
        try:
            if self._queue is None:
                log.debug("webhook dispatcher not running; event %s dropped", event)
                return
            if self._owners is not None and owner_id not in self._owners:
                return
            self._queue.put_nowait(_Event(owner_id, event, dict(data), utcnow()))
        except asyncio.QueueFull:
            log.warning("webhook queue full; event %s dropped", event)
        except Exception:
            log.exception("webhook emit failed")

    def watch(self, owner_id: str) -> None:
        """Note at once that `owner_id` has an active webhook (this process's own change)."""
        if self._owners is not None:
            self._owners.add(owner_id)

    async def _refresh_owners(self) -> None:
        """Reload the owners with an active webhook: others' changes show within seconds."""
        while True:
            try:
                async with self.sessions() as db:
                    found = await db.execute(
                        select(Webhook.owner_id).where(Webhook.active.is_(True)).distinct()
                    )
                    self._owners = set(found.scalars())
            except Exception:
                self._owners = None  # unknown: look every event up until this works again
                log.warning("could not load webhook owners", exc_info=True)
            await asyncio.sleep(OWNERS_REFRESH_SECONDS)

    def schedule(self, delivery_id: str) -> None:
        """Queue a recorded pending delivery for sending (a no-op while stopped)."""
        if self._queue is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(delivery_id)

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the sender tasks and queue the pending deliveries a stopped process left."""
        if self._tasks:
            return
        self._queue = asyncio.Queue(self.max_queued)
        self._slots = asyncio.Semaphore(self.max_in_flight)
        self._client = httpx.AsyncClient(
            timeout=self.timeout, follow_redirects=False, headers={"User-Agent": USER_AGENT}
        )
        self._tasks = [
            asyncio.create_task(self._serve(), name=f"webhooks-sender-{i}")
            for i in range(self.senders)
        ]
        self._tasks.append(asyncio.create_task(self._refresh_owners(), name="webhooks-owners"))
        try:
            async with self.sessions() as db:
                pending = await db.execute(
                    select(WebhookDelivery.id)
                    .where(WebhookDelivery.status == PENDING)
                    .order_by(WebhookDelivery.created_at)
                )
                for delivery_id in pending.scalars():
                    self.schedule(delivery_id)
        except Exception:
            log.exception("could not resume pending webhook deliveries")

    async def stop(self) -> None:
        """Stop sending; deliveries cut short stay pending for the next start."""
        tasks, self._tasks = self._tasks, []
        tasks += list(self._in_flight)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._in_flight.clear()
        self._queue = None
        self._owners = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- work -------------------------------------------------------------------------------
    async def _serve(self) -> None:
        assert self._queue is not None and self._slots is not None
        queue, slots = self._queue, self._slots
        while True:
            item = await queue.get()
            try:
                ids = [item] if isinstance(item, str) else await self._record(item)
                for delivery_id in ids:
                    await slots.acquire()
                    task = asyncio.create_task(self._deliver(delivery_id, slots))
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook event could not be recorded")

    async def _record(self, event: _Event) -> list[str]:
        """Record a pending delivery per active webhook of the owner subscribed to the event."""
        async with self.sessions() as db:
            hooks = await db.execute(
                select(Webhook).where(Webhook.owner_id == event.owner_id, Webhook.active.is_(True))
            )
            rows = [
                WebhookDelivery(
                    id=new_id(),
                    webhook_id=hook.id,
                    event=event.event,
                    payload=event.data,
                    status=PENDING,
                    attempts=0,
                    created_at=event.at,
                )
                for hook in hooks.scalars()
                if not hook.events or event.event in hook.events
            ]
            if not rows:
                return []
            db.add_all(rows)
            await db.commit()
            return [row.id for row in rows]

    async def _deliver(self, delivery_id: str, slots: asyncio.Semaphore) -> None:
        """Send one delivery until it is delivered, fails for good, or attempts run out."""
        try:
            while True:
                async with self.sessions() as db:
                    delivery = await db.get(WebhookDelivery, delivery_id)
                    if delivery is None or delivery.status != PENDING:
                        return  # deleted with its webhook, or already settled
                    hook = await db.get(Webhook, delivery.webhook_id)
                    if hook is None:
                        return
                    url, secret, body = hook.url, hook.secret, body_of(delivery)
                    event, attempt = delivery.event, delivery.attempts + 1
                outcome = await self._attempt(url, secret, body, event, delivery_id)
                final = outcome.delivered or not outcome.retry or attempt >= self.max_attempts
                async with self.sessions() as db:
                    delivery = await db.get(WebhookDelivery, delivery_id)
                    if delivery is None:
                        return
                    delivery.attempts = attempt
                    delivery.last_status_code = outcome.status_code
                    delivery.last_error = outcome.error
                    if outcome.delivered:
                        delivery.status, delivery.delivered_at = DELIVERED, utcnow()
                    elif final:
                        delivery.status = FAILED
                    await db.commit()
                if final:
                    log.info(
                        "webhook delivery %s",
                        DELIVERED if outcome.delivered else FAILED,
                        extra={"delivery_id": delivery_id, "attempts": attempt},
                    )
                    return
                await asyncio.sleep(self.base_delay * 2 ** (attempt - 1))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook delivery crashed", extra={"delivery_id": delivery_id})
        finally:
            slots.release()

    async def _attempt(
        self, url: str, secret: str, body: bytes, event: str, delivery_id: str
    ) -> _Outcome:
        """POST once to the checked, pinned address; classify the outcome."""
        assert self._client is not None
        try:
            target = await urls.pin(url, self.settings.webhooks_allow_private)
        except urls.UnsafeUrl:
            return _Outcome(False, False, None, "the URL resolves to a non-public address")
        except urls.UnresolvableUrl:
            return _Outcome(False, True, None, "the URL's host does not resolve")
        request = self._client.build_request(
            "POST",
            target.url,
            content=body,
            headers={
                "Host": target.host_header,
                "Content-Type": "application/json",
                "X-BotGPT-Event": event,
                "X-BotGPT-Delivery": delivery_id,
                "X-BotGPT-Signature": sign(secret, body),
            },
            extensions={"sni_hostname": target.sni_hostname},
        )
        try:
            response = await self._client.send(request)
            await response.aclose()
        except httpx.TimeoutException:
            return _Outcome(False, True, None, "timed out")
        except httpx.HTTPError as exc:
            return _Outcome(False, True, None, f"connection failed ({type(exc).__name__})")
        code = response.status_code
        if 200 <= code < 300:
            return _Outcome(True, False, code, None)
        retry = code >= 500 or code == 429
        return _Outcome(False, retry, code, f"HTTP {code}"[:_ERROR_CHARS])
