"""Typed records passed between the steps of a chat turn (see docs/architecture.md).

`TurnRequest` is what an entry point asks for; `Turn` is a prepared turn (both messages
stored, the prompt built, the provider chosen); `TurnEvent` is one step of its stream;
`TurnResult` is what a finished turn hands back to be rendered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import BaseModel

from botgpt.conversations.grounding import Grounding
from botgpt.conversations.profile import TurnProfile
from botgpt.llm.base import ChatRequest, LLMProvider
from botgpt.ratelimit import RateLimiter


@dataclass(slots=True)
class MessageRecord:
    """A message as the turn writes it: its column values, read like an ORM row by views."""

    id: str
    conversation_id: str
    seq: int
    role: str
    content: str
    status: str
    created_at: datetime
    reply_to_id: str | None = None
    superseded: bool = False
    completed_at: datetime | None = None
    provider: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    citations: list[dict[str, Any]] | None = None
    context_manifest: dict[str, Any] | None = None
    source: str | None = None  # model | faq | not_found
    faq_id: str | None = None
    bot_version: int | None = None
    support: dict[str, Any] | None = None  # the grounded reply's sentence-by-sentence check
    # The process generating a reply, and until when (see conversations/leases.py).
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None

    def values(self) -> dict[str, Any]:
        """Every column value, for one batched INSERT."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_row(cls, row: Any) -> MessageRecord:
        """A stored message row (a SQLAlchemy Row of the messages table)."""
        mapping = row._mapping
        return cls(
            **{f.name: mapping[f.name] for f in dataclasses.fields(cls) if f.name in mapping}
        )


@dataclass(frozen=True, slots=True)
class VisitorLink:
    """A bot visitor's conversation: which bot, which session, and a verified visitor id."""

    bot_id: str
    session: str
    visitor_id: str | None = None


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """One chat turn as an entry point asks for it.

    No `conversation_id`: a new conversation. `regenerate` names the reply to write again
    (then `text` is unused). `document_ids` given on an existing conversation replace its
    documents and ground this turn in them. `profile` None means the app's default.
    """

    owner_id: str
    text: str = ""
    conversation_id: str | None = None
    regenerate: str | None = None
    mode: str = "open"
    title: str | None = None
    document_ids: Sequence[str] | None = None
    language: str | None = None
    profile: TurnProfile | None = None
    visitor: VisitorLink | None = None
    rate_key: str | None = None  # who the turn counts against (default: the owner)
    extra_limits: tuple[tuple[RateLimiter, str], ...] = ()


@dataclass(slots=True)
class Turn:
    """A prepared turn: both messages stored, the prompt built, the provider chosen."""

    conversation_id: str
    owner_id: str
    title: str
    mode: str
    user: MessageRecord
    assistant: MessageRecord
    request: ChatRequest
    manifest: dict[str, Any]
    profile: TurnProfile
    provider: LLMProvider
    summary: str | None = None
    unsummarized: list[Any] = field(default_factory=list)
    auto_title: bool = False
    grounding: Grounding | None = None
    canned: str | None = None  # a reply given without the model (not found, an FAQ, cached)
    canned_citations: list[dict[str, Any]] | None = None  # a cached answer's citations
    cache_key: str | None = None  # where a complete answer is kept (answer cache on)

    def ids(self) -> dict[str, Any]:
        """The ids every event of the turn carries."""
        return {
            "conversation_id": self.conversation_id,
            "user_message_id": self.user.id,
            "assistant_message_id": self.assistant.id,
        }


@dataclass(frozen=True, slots=True)
class TurnResult:
    """A finished (or failed, or cancelled) turn, ready to be rendered by an entry point."""

    conversation_id: str
    title: str
    mode: str
    user: MessageRecord
    assistant: MessageRecord


class TurnEvent(NamedTuple):
    """One event of a streamed turn: start, delta, usage, done, error or cancelled."""

    event: str
    data: dict[str, Any]

    def client_data(self) -> dict[str, Any]:
        """The data as clients see it: models as JSON values, internal objects (cause) removed."""
        return {
            k: v.model_dump(mode="json") if isinstance(v, BaseModel) else v
            for k, v in self.data.items()
            if k != "cause"
        }
