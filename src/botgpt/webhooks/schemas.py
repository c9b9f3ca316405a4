"""Request and response shapes of the webhooks API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, model_validator

from botgpt.events import EVENT_TYPES
from botgpt.text import Text

MAX_URL_CHARS = 2000


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError("has an invalid port") from exc
    return url


def _check_events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event types {unknown}; allowed: {', '.join(EVENT_TYPES)}")
    return list(dict.fromkeys(events))


Url = Annotated[
    Text,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_URL_CHARS),
    AfterValidator(_check_url),
    Field(description="The http(s) URL that receives the POSTs."),
]
Events = Annotated[
    list[Text],
    Field(max_length=len(EVENT_TYPES), description="Event types to receive; empty means all."),
    AfterValidator(_check_events),
]
DeliveryStatus = Literal["pending", "delivered", "failed"]


class WebhookCreate(BaseModel):
    """A new webhook; its signing secret is generated and shown once."""

    url: Url
    events: Events = Field(default_factory=list)
    active: bool = True
    user_id: Text | None = Field(
        default=None, max_length=200, description="Service keys only: the user to act for."
    )


class WebhookUpdate(BaseModel):
    """A partial update: only the fields sent change."""

    url: Url | None = None
    events: Events | None = None
    active: bool | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> WebhookUpdate:
        nulls = [f for f in self.model_fields_set if getattr(self, f) is None]
        if nulls:
            raise ValueError(f"{', '.join(sorted(nulls))} cannot be null")
        return self


class WebhookPublic(BaseModel):
    """A webhook as the API shows it (never with its secret)."""

    id: str
    user_id: str
    url: str
    events: list[str]
    active: bool
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookPublic):
    """A webhook just created, with the secret that signs its POSTs (shown only now)."""

    secret: str = Field(
        description="HMAC-SHA256 key of the X-BotGPT-Signature header; it is not shown again."
    )


class WebhookList(BaseModel):
    """A page of webhooks, newest first."""

    items: list[WebhookPublic]
    total: int
    page: int
    limit: int
    pages: int


class DeliveryPublic(BaseModel):
    """One event sent to a webhook and the outcome of its attempts."""

    id: str
    webhook_id: str
    event: str
    payload: dict[str, Any]
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryList(BaseModel):
    """A page of deliveries, newest first."""

    items: list[DeliveryPublic]
    total: int
    page: int
    limit: int
    pages: int
