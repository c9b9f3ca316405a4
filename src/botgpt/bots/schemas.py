"""Request and response shapes of the bots API (seed 003's shapes accepted too)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from botgpt.text import Text

MAX_STARTERS = 6
MAX_ORIGINS = 20
ProviderKind = Literal["default", "local", "openai", "anthropic", "groq"]
BotName = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Prompt = Annotated[Text, StringConstraints(max_length=20_000)]
Starter = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Colour = Annotated[Text, StringConstraints(pattern=r"^#[0-9A-Fa-f]{6}$")]


def _origin(value: str) -> str:
    parts = urlsplit(value.strip().rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
        raise ValueError(f"{value!r} is not an origin such as https://www.example.com")
    return f"{parts.scheme}://{parts.netloc}".lower()


def _https_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    return value


Origin = Annotated[Text, StringConstraints(max_length=300), AfterValidator(_origin)]
Url = Annotated[Text, StringConstraints(max_length=500), AfterValidator(_https_url)]


class BotWidget(BaseModel):
    """How the website widget and the chat page look."""

    model_config = ConfigDict(extra="forbid")

    title: Text | None = Field(default=None, max_length=100)
    primary_color: Colour = "#2563eb"
    position: Literal["bottom-right", "bottom-left"] = "bottom-right"
    avatar_url: Url | None = None
    launcher_text: Text = Field(default="Chat with us", max_length=40)


class _BotFields(BaseModel):
    """Fields a create and an update share (an update sends only some)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    description: Text | None = Field(default=None, max_length=2000)
    system_prompt: Prompt | None = Field(
        default=None, validation_alias=AliasChoices("system_prompt", "prompt")
    )
    provider: ProviderKind | None = None
    model: Text | None = Field(default=None, max_length=100)
    base_url: Url | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=32_000)
    api_key: Text | None = Field(
        default=None, min_length=1, max_length=500, description="Stored encrypted, never shown."
    )
    document_ids: list[str] | None = Field(default=None, max_length=200)
    top_k: int | None = Field(default=None, ge=1, le=20)
    min_score: float | None = Field(default=None, ge=-1, le=1)
    memory_messages: int | None = Field(default=None, ge=0, le=200)
    faq_first: bool | None = None
    faq_threshold: float | None = Field(default=None, ge=0, le=1)
    answer_cache: bool | None = Field(
        default=None, description="Answer a repeated first question from the cache (no tokens)."
    )
    welcome_message: Text | None = Field(default=None, max_length=2000)
    starters: list[Starter] | None = Field(default=None, max_length=MAX_STARTERS)
    widget: BotWidget | None = None
    allowed_origins: list[Origin] | None = Field(default=None, max_length=MAX_ORIGINS)
    active: bool | None = None
    session_message_cap: int | None = Field(default=None, ge=1, le=10_000)
    daily_message_cap: int | None = Field(default=None, ge=1, le=1_000_000)
    # Seed 003's flat widget fields, folded into `widget`.
    widget_color: Colour | None = None
    widget_position: Literal["bottom-right", "bottom-left"] | None = None
    widget_title: Text | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _fold_seed_widget(self) -> _BotFields:
        flat = {
            "primary_color": self.widget_color,
            "position": self.widget_position,
            "title": self.widget_title,
        }
        given = {k: v for k, v in flat.items() if v is not None}
        if given:
            base = self.widget.model_dump() if self.widget else {}
            self.widget = BotWidget(**{**base, **given})
        return self


class BotCreate(_BotFields):
    """A new bot; only the name is required (seed 003: `{name, provider, api_key, prompt}`)."""

    name: BotName
    user_id: Text | None = Field(
        default=None, max_length=200, description="Service keys only: the owner to act for."
    )


class BotUpdate(_BotFields):
    """A partial update: only the fields sent change (`api_key: null` removes the key)."""

    name: BotName | None = None


class Deployment(BaseModel):
    """Where the bot can be used: its chat page and the widget's embed code."""

    chat_url: str
    widget_url: str
    embed_code: str


class BotPublic(BaseModel):
    """A bot as its owner sees it: never the provider key or the signing secret."""

    id: str
    user_id: str
    name: str
    description: str | None
    system_prompt: str
    provider: str
    model: str
    base_url: str
    temperature: float
    max_tokens: int
    has_api_key: bool
    api_key_last4: str | None
    document_ids: list[str]
    grounded: bool
    top_k: int
    min_score: float
    memory_messages: int
    faq_first: bool
    faq_threshold: float
    answer_cache: bool
    welcome_message: str | None
    starters: list[str]
    widget: BotWidget
    allowed_origins: list[str]
    active: bool
    session_message_cap: int
    daily_message_cap: int
    version: int
    deployment: Deployment
    created_at: datetime
    updated_at: datetime


class BotCreated(BotPublic):
    """A new bot with its visitor-signing secret, shown this once."""

    signing_secret: str


class SigningSecret(BaseModel):
    """A new visitor-signing secret, shown this once."""

    signing_secret: str


class BotList(BaseModel):
    """A page of bots, newest first."""

    items: list[BotPublic]
    total: int
    page: int
    limit: int
    pages: int


class BotVersionPublic(BaseModel):
    """One numbered version: who made it, when, which fields changed, and the settings."""

    number: int
    created_by: str | None
    created_at: datetime
    changed: list[str]
    settings: dict[str, object]


class BotVersionList(BaseModel):
    """A page of versions, newest first."""

    items: list[BotVersionPublic]
    total: int
    page: int
    limit: int
    pages: int
