"""Request and response shapes of the conversations API (seed-compatible aliases included)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    Field,
    field_validator,
    model_validator,
)

from botgpt.text import Text

MODE_ALIASES = {
    "open": "open",
    "open_chat": "open",
    "chat": "open",
    "grounded": "grounded",
    "grounded_rag": "grounded",
    "rag_mode": "grounded",
    "rag": "grounded",
}

MessageText = Field(min_length=1, max_length=100_000)
Language = Annotated[
    str | None,
    Field(
        default=None,
        pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$",
        description='Reply in this language (a code such as "de" or "pt-BR").',
    ),
]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("the message must not be blank")
    return value


# A user's message: 1..100,000 characters, not only whitespace.
UserText = Annotated[Text, Field(min_length=1, max_length=100_000), AfterValidator(_not_blank)]


def _normalise_mode(value: Any) -> Any:
    if isinstance(value, str):
        mode = MODE_ALIASES.get(value.strip().lower())
        if mode is None:
            raise ValueError(f"mode must be one of {sorted(MODE_ALIASES)}")
        return mode
    return value


# A `user_id` sent with a request on an existing conversation: it must name the owner.
OWNER_CHECK = "Service keys only: the conversation's owner (another user's: 404)."


class ConversationCreate(BaseModel):
    """A new conversation with its first message (`first_message` or `message`)."""

    first_message: UserText = Field(
        validation_alias=AliasChoices("first_message", "message", "content")
    )
    mode: Literal["open", "grounded"] = "open"
    title: Text | None = Field(default=None, min_length=1, max_length=200)
    user_id: Text | None = Field(
        default=None, max_length=200, description="Service keys only: the user to act for."
    )
    document_ids: list[Text] = Field(default_factory=list, max_length=100)
    stream: bool = Field(default=False, description="Answer as Server-Sent Events.")
    language: Language = None

    _mode = field_validator("mode", mode="before")(_normalise_mode)


class MessageCreate(BaseModel):
    """A new user message (`content` or `message`)."""

    content: UserText = Field(validation_alias=AliasChoices("content", "message"))
    document_ids: list[Text] | None = Field(default=None, max_length=100)
    stream: bool = Field(default=False, description="Answer as Server-Sent Events.")
    language: Language = None
    user_id: Text | None = Field(default=None, max_length=200, description=OWNER_CHECK)


class ConversationUpdate(BaseModel):
    """Fields a client may change on a conversation."""

    title: Text | None = Field(default=None, min_length=1, max_length=200)
    archived: bool | None = None
    mode: Literal["open", "grounded"] | None = None
    document_ids: list[Text] | None = Field(default=None, max_length=100)
    user_id: Text | None = Field(default=None, max_length=200, description=OWNER_CHECK)

    _mode = field_validator("mode", mode="before")(_normalise_mode)

    @model_validator(mode="after")
    def _something(self) -> ConversationUpdate:
        if all(v is None for v in (self.title, self.archived, self.mode, self.document_ids)):
            raise ValueError("nothing to update: send title, archived, mode or document_ids")
        return self


class UsagePublic(BaseModel):
    """Token usage."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class MessageError(BaseModel):
    """Why an assistant message failed."""

    code: str
    message: str


class MessagePublic(BaseModel):
    """One message of a conversation."""

    id: str
    seq: int
    role: str
    content: str
    status: str
    created_at: datetime
    completed_at: datetime | None = None
    reply_to_id: str | None = None
    superseded: bool = False
    model: str | None = None
    provider: str | None = None
    usage: UsagePublic | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None
    error: MessageError | None = None
    citations: list[dict[str, Any]] | None = None
    context_manifest: dict[str, Any] | None = None
    source: str | None = Field(
        default=None, description="model | faq (answered from an FAQ) | not_found (documents)"
    )
    faq_id: str | None = None
    bot_version: int | None = Field(default=None, description="The bot version that wrote it.")
    support: dict[str, Any] | None = Field(
        default=None,
        description="Grounded replies: each sentence checked against the sources (policy, "
        "sentences with supported, score, passage and span; quotes of an extractive answer).",
    )


class ConversationSummary(BaseModel):
    """A conversation in a list."""

    id: str
    title: str
    mode: str
    archived: bool
    message_count: int
    last_message_preview: str | None
    created_at: datetime
    updated_at: datetime


class ConversationTotals(BaseModel):
    """Usage and cost summed over a conversation."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float


class ConversationPublic(ConversationSummary):
    """A conversation with its ordered history."""

    user_id: str
    document_ids: list[str] = Field(default_factory=list)
    usage: ConversationTotals
    messages: list[MessagePublic]


class ConversationList(BaseModel):
    """A page of conversations, newest first."""

    items: list[ConversationSummary]
    total: int
    page: int
    limit: int
    pages: int


class TurnPublic(BaseModel):
    """The result of a chat turn: the stored user message and the assistant's reply."""

    conversation_id: str
    title: str
    mode: str
    user_message: MessagePublic
    assistant_message: MessagePublic
    assistant_response: str = Field(description="The reply text (seed-compatible shortcut).")


class ChatSend(BaseModel):
    """A message for POST /api/v1/chat/send: a new conversation, or `conversation_id`'s."""

    content: UserText = Field(validation_alias=AliasChoices("content", "message"))
    conversation_id: Text | None = Field(default=None, max_length=64)
    mode: Literal["open", "grounded"] = "open"
    document_ids: list[Text] | None = Field(default=None, max_length=100)
    user_id: Text | None = Field(
        default=None, max_length=200, description="Service keys only: the user to act for."
    )
    language: Language = None
    stream: bool = Field(default=False, description="Answer as Server-Sent Events.")

    _mode = field_validator("mode", mode="before")(_normalise_mode)


class ChatSendPublic(TurnPublic):
    """A turn, with the fields of the replaced systems' chat response as well."""

    type: Literal["response"] = "response"
    content: str
    message_id: str
    timestamp: datetime

    @classmethod
    def of(cls, turn: TurnPublic) -> ChatSendPublic:
        """The chat-response view of a turn."""
        reply = turn.assistant_message
        return cls(
            **turn.model_dump(),
            content=reply.content,
            message_id=reply.id,
            timestamp=reply.completed_at or reply.created_at,
        )


class CancelPublic(BaseModel):
    """The outcome of a cancel request."""

    message_id: str
    status: str


class UsageTotals(BaseModel):
    """A user's usage and cost over all conversations."""

    user_id: str
    conversations: int
    messages: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float
