"""The chat turn: persist the question, ask the model, persist the answer (DESIGN.md section 3)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from botgpt.config import Settings
from botgpt.conversations.models import Conversation, Message
from botgpt.conversations.schemas import TurnPublic
from botgpt.conversations.views import message_from_values
from botgpt.exceptions import NotFound, ProviderFailed, UnsupportedMode
from botgpt.ids import new_id, utcnow
from botgpt.llm.base import ChatMessage, ChatRequest, LLMProvider
from botgpt.llm.errors import LLMError

log = logging.getLogger("botgpt.turn")
PREVIEW_CHARS = 200


def make_title(text: str, max_chars: int) -> str:
    """A title from the first words of a message."""
    line = " ".join(text.split())
    if len(line) <= max_chars:
        return line or "New conversation"
    cut = line[:max_chars].rsplit(" ", 1)[0] or line[:max_chars]
    return cut.rstrip(" ,.;:") + "…"


@dataclass(slots=True)
class _Pending:
    conversation_id: str
    title: str
    mode: str
    user: dict[str, Any]
    assistant: dict[str, Any]
    history: list[tuple[str, str, str]]  # (id, role, content), oldest first


class ChatService:
    """Runs chat turns against one provider; one instance per app."""

    def __init__(self, settings: Settings, provider: LLMProvider) -> None:
        self.settings = settings
        self.provider = provider

    # -- entry points ------------------------------------------------------------------------
    async def start_conversation(
        self, db: AsyncSession, owner_id: str, text: str, mode: str, title: str | None
    ) -> TurnPublic:
        """Create a conversation with its first message and answer it."""
        if mode == "grounded":
            raise UnsupportedMode(
                "Grounded mode needs uploaded documents, which this server does not support yet.",
                details={"mode": mode},
            )
        now = utcnow()
        conv_id = new_id()
        title = title or make_title(text, self.settings.title_max_chars)
        await db.execute(
            insert(Conversation).values(
                id=conv_id,
                user_id=owner_id,
                title=title,
                mode=mode,
                archived=False,
                next_seq=3,
                message_count=2,
                last_message_preview=text[:PREVIEW_CHARS],
                prompt_tokens=0,
                completion_tokens=0,
                cost_usd=0.0,
                created_at=now,
                updated_at=now,
            )
        )
        pending = await self._insert_pair(db, conv_id, title, mode, 1, text, now, history=[])
        return await self._answer(db, pending)

    async def send_message(
        self, db: AsyncSession, owner_id: str, conversation_id: str, text: str
    ) -> TurnPublic:
        """Append a user message to a conversation and answer it."""
        now = utcnow()
        # The write comes first: it takes SQLite's write lock (or the PostgreSQL row lock)
        # before anything is read, so concurrent sends get consecutive sequence numbers.
        row = (
            await db.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id, Conversation.user_id == owner_id)
                .values(
                    next_seq=Conversation.next_seq + 2,
                    message_count=Conversation.message_count + 2,
                    last_message_preview=text[:PREVIEW_CHARS],
                    updated_at=now,
                )
                .returning(Conversation.next_seq, Conversation.title, Conversation.mode)
            )
        ).first()
        if row is None:
            await db.rollback()
            raise NotFound("Conversation not found.")
        next_seq, title, mode = row
        user_seq = next_seq - 2
        history_rows = (
            await db.execute(
                select(Message.id, Message.role, Message.content)
                .where(
                    Message.conversation_id == conversation_id,
                    Message.seq < user_seq,
                    Message.status == "complete",
                    Message.superseded.is_(False),
                )
                .order_by(Message.seq.desc())
                .limit(self.settings.history_max_messages)
            )
        ).all()
        history = [(r[0], r[1], r[2]) for r in reversed(history_rows)]
        pending = await self._insert_pair(
            db, conversation_id, title, mode, user_seq, text, now, history
        )
        return await self._answer(db, pending)

    # -- steps -------------------------------------------------------------------------------
    async def _insert_pair(
        self,
        db: AsyncSession,
        conv_id: str,
        title: str,
        mode: str,
        user_seq: int,
        text: str,
        now: datetime,
        history: list[tuple[str, str, str]],
    ) -> _Pending:
        user = _row(conv_id, user_seq, "user", text, "complete", now)
        user["completed_at"] = now
        assistant = _row(conv_id, user_seq + 1, "assistant", "", "pending", now)
        assistant["reply_to_id"] = user["id"]
        await db.execute(insert(Message), [user, assistant])
        # Committed before the provider is called: the question survives any model failure.
        await db.commit()
        return _Pending(conv_id, title, mode, user, assistant, history)

    def build_request(self, p: _Pending) -> tuple[ChatRequest, dict[str, Any]]:
        """The prompt for a turn within the token budget, and its manifest."""
        budget = min(
            self.settings.context_max_tokens,
            self.provider.context_window - self.settings.reply_reserve_tokens,
        )
        system = self.settings.default_system_prompt
        used = _estimate(system) + _estimate(p.user["content"])
        kept: list[tuple[str, str, str]] = []
        dropped: list[str] = []
        for item in reversed(p.history):
            cost = _estimate(item[2])
            if not dropped and used + cost <= budget:
                kept.append(item)
                used += cost
            else:
                dropped.append(item[0])
        kept.reverse()
        messages = [ChatMessage("system", system)]
        messages += [ChatMessage(role, content) for _, role, content in kept]  # type: ignore[arg-type]
        messages.append(ChatMessage("user", p.user["content"]))
        manifest = {
            "budget_tokens": budget,
            "estimated_tokens": used,
            "message_ids": [i for i, _, _ in kept] + [p.user["id"]],
            "dropped_message_ids": dropped,
        }
        request = ChatRequest(
            messages=messages,
            max_tokens=self.settings.llm_max_tokens,
            temperature=self.settings.llm_temperature,
        )
        return request, manifest

    async def _answer(self, db: AsyncSession, p: _Pending) -> TurnPublic:
        request, manifest = self.build_request(p)
        started = time.perf_counter()
        parts: list[str] = []
        usage = None
        try:
            async for chunk in self.provider.stream(request):
                if chunk.delta:
                    parts.append(chunk.delta)
                if chunk.usage is not None:
                    usage = chunk.usage
        except LLMError as error:
            await self._fail(db, p, error, "".join(parts), manifest, started)
            raise ProviderFailed(
                error.message,
                cause=error,
                details={
                    "conversation_id": p.conversation_id,
                    "user_message_id": p.user["id"],
                    "assistant_message_id": p.assistant["id"],
                },
            ) from error
        text = "".join(parts)
        latency = (time.perf_counter() - started) * 1000
        prompt_tokens = usage.prompt_tokens if usage else manifest["estimated_tokens"]
        completion_tokens = usage.completion_tokens if usage else _estimate(text)
        model = request.model or self.provider.model
        cost = self._cost(model, prompt_tokens, completion_tokens)
        done = utcnow()
        values = {
            "content": text,
            "status": "complete",
            "provider": self.provider.name,
            "model": model,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "latency_ms": round(latency, 2),
            "cost_usd": cost,
            "context_manifest": manifest,
            "completed_at": done,
        }
        await db.execute(update(Message).where(Message.id == p.assistant["id"]).values(**values))
        await db.execute(
            update(Conversation)
            .where(Conversation.id == p.conversation_id)
            .values(
                prompt_tokens=Conversation.prompt_tokens + prompt_tokens,
                completion_tokens=Conversation.completion_tokens + completion_tokens,
                cost_usd=Conversation.cost_usd + (cost or 0.0),
                last_message_preview=text[:PREVIEW_CHARS],
                updated_at=done,
            )
        )
        await db.commit()
        p.assistant.update(values)
        return self._turn(p)

    async def _fail(
        self,
        db: AsyncSession,
        p: _Pending,
        error: LLMError,
        partial: str,
        manifest: dict[str, Any],
        started: float,
    ) -> None:
        log.warning("turn failed: %s (%s)", error.code, type(error).__name__)
        values = {
            "content": partial,
            "status": "failed",
            "error_code": error.code,
            "error_message": error.message[:500],
            "provider": self.provider.name,
            "model": self.provider.model,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "context_manifest": manifest,
            "completed_at": utcnow(),
        }
        await db.execute(update(Message).where(Message.id == p.assistant["id"]).values(**values))
        await db.commit()

    def _cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        price = self.settings.llm_prices.get(model)
        if price is None:
            return None
        return round((prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000, 8)

    def _turn(self, p: _Pending) -> TurnPublic:
        assistant = message_from_values(p.assistant)
        return TurnPublic(
            conversation_id=p.conversation_id,
            title=p.title,
            mode=p.mode,
            user_message=message_from_values(p.user),
            assistant_message=assistant,
            assistant_response=assistant.content,
        )


def _estimate(text: str) -> int:
    # A cheap bound used until a model-specific tokenizer is wired in.
    return len(text) // 4 + 4


def _row(
    conv_id: str, seq: int, role: str, content: str, status: str, now: datetime
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "conversation_id": conv_id,
        "seq": seq,
        "role": role,
        "content": content,
        "status": status,
        "reply_to_id": None,
        "superseded": False,
        "created_at": now,
        "completed_at": None,
    }
