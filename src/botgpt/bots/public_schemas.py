"""Shapes of the public chat API: what a visitor sends and what a bot answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from botgpt.bots.schemas import BotWidget
from botgpt.conversations.feedback import Rating
from botgpt.conversations.schemas import MessagePublic, UserText
from botgpt.text import Text

MAX_VISITOR_CHARS = 4000
# Unguessable ids: the server issues UUIDs; a client may bring its own of 16..64 url-safe chars.
SessionId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_-]{16,64}$"),
    Field(
        description="The visitor's session (a UUID the server issued, or 16..64 url-safe chars)."
    ),
]


class PublicMessage(BaseModel):
    """A visitor's message; `user_id` + `user_token` identify a signed-in visitor of the site."""

    model_config = ConfigDict(populate_by_name=True)

    message: UserText = Field(validation_alias=AliasChoices("message", "content"), max_length=4000)
    session_id: SessionId | None = None
    user_id: Text | None = Field(default=None, max_length=200)
    user_token: Text | None = Field(
        default=None,
        max_length=128,
        description="HMAC-SHA256(user_id) with the bot's signing secret.",
    )
    stream: bool = Field(default=False, description="Answer as Server-Sent Events.")

    @field_validator("message")
    @classmethod
    def _short_enough(cls, value: str) -> str:
        # Visitors are anonymous: a tighter bound than signed-in users' 100,000 characters.
        if len(value) > MAX_VISITOR_CHARS:
            raise ValueError(f"at most {MAX_VISITOR_CHARS} characters")
        return value


class PublicReply(BaseModel):
    """The bot's answer to one visitor message."""

    session_id: str
    conversation_id: str
    message_id: str
    user_message_id: str
    response: str = Field(description="The reply text (the seed's field).")
    status: str
    source: str | None = Field(description="model | faq | not_found")
    citations: list[dict[str, Any]] | None
    suggested_questions: list[str] = Field(
        description="The bot's starters, on a session's first turn."
    )
    created_at: datetime


class BotConfigPublic(BaseModel):
    """A bot's public face (never its prompt, model, key or knowledge)."""

    id: str
    name: str
    welcome_message: str | None
    starters: list[str]
    widget: BotWidget


class SessionHistory(BaseModel):
    """The messages of one visitor session, oldest first."""

    session_id: str
    conversation_id: str | None
    messages: list[MessagePublic]


class VisitorFeedback(BaseModel):
    """A visitor's thumbs up or down on a reply of their session."""

    session_id: SessionId
    rating: Rating
    comment: Text | None = Field(default=None, max_length=2000)
