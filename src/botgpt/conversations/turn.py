"""The chat turn: persist the question, ask the model, stream and persist the answer.

DESIGN.md section 3. A turn is prepared (user message committed, assistant message
`pending`, prompt built within the token budget) and then executed as a stream of
events; the non-streaming API simply drains that stream. Whatever happens to the
provider or the client, the assistant message ends `complete`, `failed` or
`cancelled` with the text generated so far.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pydantic import BaseModel
from sqlalchemy import Connection

from botgpt.config import Settings
from botgpt.conversations import store
from botgpt.conversations.grounding import Grounder, Grounding, citations
from botgpt.conversations.leases import LiveReplies
from botgpt.conversations.prompts import TITLE_PROMPT, clean_title, make_title, system_prompt
from botgpt.conversations.schemas import MessagePublic, TurnPublic
from botgpt.conversations.store import HistoryRow
from botgpt.conversations.views import message_from_values
from botgpt.errors import llm_error_payload
from botgpt.events import EventSink, no_events
from botgpt.exceptions import (
    Conflict,
    InvalidInput,
    NotFound,
    ProviderFailed,
    UnsupportedMode,
)
from botgpt.ids import new_id, utcnow
from botgpt.llm.base import ChatChunk, ChatMessage, ChatRequest, LLMProvider, Usage
from botgpt.llm.context import (
    ContextBudgetError,
    RunningSummary,
    Summarizer,
    build_context,
    effective_budget,
)
from botgpt.llm.errors import LLMError
from botgpt.llm.resilience import stream_with_source
from botgpt.llm.tokens import TokenCounter, get_counter
from botgpt.moderation.service import Moderator, moderate
from botgpt.observability import metrics
from botgpt.ratelimit import RateLimiter
from botgpt.sqlrunner import SqlRunner

log = logging.getLogger("botgpt.turn")


async def _canned(provider: LLMProvider, text: str) -> AsyncIterator[tuple[LLMProvider, ChatChunk]]:
    """A fixed reply shaped like a provider stream (no model call, no tokens)."""
    yield provider, ChatChunk(delta=text)
    yield provider, ChatChunk(usage=Usage(0, 0), finish_reason="stop")


class TurnEvent(NamedTuple):
    """One event of a streamed turn: start, delta, usage, done or error."""

    event: str
    data: dict[str, Any]

    def client_data(self) -> dict[str, Any]:
        """The data as clients see it: models as JSON values, internal objects (cause) removed."""
        return {
            k: v.model_dump(mode="json") if isinstance(v, BaseModel) else v
            for k, v in self.data.items()
            if k != "cause"
        }


@dataclass(slots=True)
class Turn:
    """A prepared turn: both messages stored, the prompt built."""

    conversation_id: str
    owner_id: str
    title: str
    mode: str
    user: dict[str, Any]
    assistant: dict[str, Any]
    request: ChatRequest
    manifest: dict[str, Any]
    summary: str | None = None
    unsummarized: list[HistoryRow] = field(default_factory=list)
    auto_title: bool = False
    grounding: Grounding | None = None
    canned: str | None = None  # a reply given without the model (nothing found in the documents)


class ChatService:
    """Prepares and runs chat turns against one provider; one instance per app."""

    def __init__(
        self,
        settings: Settings,
        provider: LLMProvider,
        runner: SqlRunner,
        grounder: Grounder | None = None,
        limiter: RateLimiter | None = None,
        moderator: Moderator | None = None,
    ) -> None:
        self.settings = settings
        self.limiter = limiter
        self.moderator = moderator
        self.on_event: EventSink = no_events  # webhooks subscribe here
        self.provider = provider
        self.runner = runner
        self.grounder = grounder
        self.counter: TokenCounter = get_counter(provider.model)
        self.summarizer = Summarizer(provider, counter=self.counter)
        self.budget = effective_budget(
            provider.context_window, settings.reply_reserve_tokens, settings.context_max_tokens
        )
        self.leases = LiveReplies(
            runner, settings.stream_lease_seconds, settings.stream_flush_seconds
        )
        self._background: set[asyncio.Task[None]] = set()

    # -- preparing ---------------------------------------------------------------------------
    async def start_conversation(
        self,
        owner_id: str,
        text: str,
        mode: str,
        title: str | None,
        document_ids: Sequence[str] = (),
        language: str | None = None,
    ) -> Turn:
        """Create a conversation with its first message; the reply is still to come."""
        await self._admit(owner_id, text)
        document_ids = list(dict.fromkeys(document_ids))
        if mode == "grounded" and not document_ids:
            raise InvalidInput(
                "Grounded mode answers from documents: pass document_ids of uploaded documents.",
                details={"mode": mode},
            )
        if document_ids:
            # Checked before anything is written: a refused turn stores nothing.
            await self._scope_check(owner_id, document_ids)
        now = utcnow()
        conv_id = new_id()
        auto_title = title is None
        title = title or make_title(text, self.settings.title_max_chars)
        rows = self._pair(conv_id, 1, text, now)
        values = {
            "id": conv_id,
            "user_id": owner_id,
            "title": title,
            "mode": mode,
            "archived": False,
            "next_seq": 3,
            "message_count": 2,
            "last_message_preview": text[: store.PREVIEW_CHARS],
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost_usd": 0.0,
            "summary": None,
            "summary_message_id": None,
            "created_at": now,
            "updated_at": now,
        }
        # Committed before the provider is called: the question survives any model failure.
        await self.runner.run(
            lambda conn: store.insert_conversation(conn, values, rows, document_ids)
        )
        self.on_event(owner_id, "conversation.created", {"conversation_id": conv_id, "mode": mode})
        turn = await self._prepare(
            conv_id, owner_id, title, mode, rows, [], None, None, document_ids, language
        )
        turn.auto_title = auto_title
        return turn

    async def send_message(
        self,
        owner_id: str,
        conversation_id: str,
        text: str,
        document_ids: Sequence[str] | None = None,
        language: str | None = None,
    ) -> Turn:
        """Append a user message to an owned conversation; the reply is still to come.

        `document_ids`, when given, replace the conversation's documents.
        """
        await self._admit(owner_id, text)
        now = utcnow()
        limit = self.settings.history_max_messages
        new_scope = list(dict.fromkeys(document_ids)) if document_ids is not None else None
        if new_scope:
            await self._scope_check(owner_id, new_scope)
        checked = new_scope is not None

        def make_rows(user_seq: int) -> list[dict[str, Any]]:
            return self._pair(conversation_id, user_seq, text, now)

        def append(conn: Connection, checked: bool) -> store.AppendResult:
            return store.append_user_message(
                conn, conversation_id, owner_id, text, now, limit, make_rows, new_scope, checked
            )

        while True:
            try:
                result = await self.runner.run(functools.partial(append, checked=checked))
                break
            except store.ScopeUnchecked as pending:
                # A grounded conversation: its documents must be ready before the question
                # is stored. The transaction was rolled back; check, then append for real.
                await self._scope_check(owner_id, pending.document_ids)
                checked = True
        if result is None:
            raise NotFound("Conversation not found.")
        appended, rows = result
        return await self._prepare(
            conversation_id,
            owner_id,
            appended.title,
            appended.mode,
            rows,
            appended.history,
            appended.summary,
            appended.summary_message_id,
            appended.document_ids,
            language,
        )

    async def regenerate(self, owner_id: str, conversation_id: str, message_id: str) -> Turn:
        """A new reply to the question of the latest assistant message; the old one is kept."""
        await self._admit(owner_id)
        now = utcnow()
        limit = self.settings.history_max_messages
        try:
            lease = self.leases.lease_values()
            result = await self.runner.run(
                lambda conn: store.regenerate(
                    conn, conversation_id, owner_id, message_id, now, limit, lease
                )
            )
        except store.RegenerateRefused as e:
            if e.reason == "missing":
                raise NotFound("Message not found.") from e
            if e.reason == "in_progress":
                raise Conflict("This reply is still being generated.") from e
            raise Conflict("Only the latest reply of a conversation can be regenerated.") from e
        if result is None:
            raise NotFound("Conversation not found.")
        appended, user, assistant = result
        return await self._prepare(
            conversation_id,
            owner_id,
            appended.title,
            appended.mode,
            [user, assistant],
            appended.history,
            appended.summary,
            appended.summary_message_id,
            appended.document_ids,
        )

    async def _admit(self, owner_id: str, text: str | None = None) -> None:
        # Before anything is written: a refused turn stores nothing.
        if self.limiter is not None and self.limiter.enabled:
            await self.limiter.hit(owner_id)
        if text is not None and self.moderator is not None:
            await moderate(self.moderator, text, self.settings.moderation_fail_closed)

    def _pair(self, conv_id: str, user_seq: int, text: str, now: Any) -> list[dict[str, Any]]:
        user = store.message_row(conv_id, user_seq, "user", text, "complete", now)
        assistant = store.message_row(conv_id, user_seq + 1, "assistant", "", "pending", now)
        assistant["reply_to_id"] = user["id"]
        assistant.update(self.leases.lease_values())
        return [user, assistant]

    async def _scope_check(self, owner_id: str, document_ids: Sequence[str]) -> None:
        if self.grounder is None:
            raise UnsupportedMode("This server has no document store for grounded mode.")
        await self.grounder.scope.check_ready(owner_id, document_ids)

    async def _prepare(
        self,
        conv_id: str,
        owner_id: str,
        title: str,
        mode: str,
        rows: list[dict[str, Any]],
        history: list[HistoryRow],
        summary: str | None,
        summary_message_id: str | None,
        document_ids: Sequence[str] = (),
        language: str | None = None,
    ) -> Turn:
        user, assistant = rows
        newest = HistoryRow(user["id"], "user", user["content"])
        grounding = None
        if mode == "grounded" and self.grounder is not None:
            grounding = await self.grounder.ground(owner_id, document_ids, user["content"], history)
        try:
            built = build_context(
                system_prompt=system_prompt(self.settings.default_system_prompt, language),
                history=[*history, newest],
                budget=self.budget,
                counter=self.counter,
                grounding=grounding.block if grounding else None,
                summary=RunningSummary(summary, summary_message_id) if summary else None,
            )
        except ContextBudgetError as e:
            raise InvalidInput("The system prompt does not fit the model's context.") from e
        request = ChatRequest(
            messages=built.messages,
            max_tokens=self.settings.llm_max_tokens,
            temperature=self.settings.llm_temperature,
        )
        manifest = built.manifest
        canned = None
        if grounding is not None:
            manifest["grounding"] = grounding.manifest()
            if not grounding.sources:
                canned = self.settings.grounded_not_found_message
        return Turn(
            conv_id,
            owner_id,
            title,
            mode,
            user,
            assistant,
            request,
            manifest,
            summary,
            list(built.unsummarized),
            grounding=grounding,
            canned=canned,
        )

    # -- running -----------------------------------------------------------------------------
    async def complete(self, turn: Turn) -> TurnPublic:
        """Run a turn to the end; a provider failure raises `ProviderFailed`."""
        async for event in self.events(turn):
            if event.event == "error":
                cause: LLMError = event.data["cause"]
                raise ProviderFailed(cause.message, cause=cause, details=self._ids(turn))
        return self.turn_public(turn)

    async def events(self, turn: Turn) -> AsyncIterator[TurnEvent]:
        """Stream a turn: start, deltas, usage, then done or error; persists the outcome."""
        mid = turn.assistant["id"]
        parts: list[str] = []
        usage: Usage | None = None
        started = time.perf_counter()
        flushed = started
        outcome = "cancelled"
        source: LLMProvider = self.provider
        stream = (
            _canned(self.provider, turn.canned)
            if turn.canned is not None
            else stream_with_source(self.provider, turn.request)
        )
        # Held from here until `_finish` stored the outcome: the lease stays fresh meanwhile.
        self.leases.hold(mid, turn.assistant.get("lease_expires_at"))
        try:
            # Inside the try: a client gone right at the start still settles the reply.
            yield TurnEvent("start", self._ids(turn))
            async for answered, chunk in stream:
                source = answered  # a fallback may answer instead of the primary
                if chunk.delta:
                    if not parts:
                        elapsed = time.perf_counter() - started
                        metrics.FIRST_TOKEN.labels(answered.name).observe(elapsed)
                    parts.append(chunk.delta)
                    yield TurnEvent("delta", {"text": chunk.delta})
                    now = time.perf_counter()
                    if now - flushed >= self.settings.stream_flush_seconds:
                        flushed = now
                        self.leases.progress(mid, "".join(parts))  # batched, not awaited
                if chunk.usage is not None:
                    usage = chunk.usage
            outcome = "complete"
        except LLMError as error:
            outcome = "failed"
            await self._finish(turn, parts, usage, started, "failed", error, source)
            yield TurnEvent("error", {**llm_error_payload(error), "cause": error})
            return
        finally:
            if outcome == "cancelled":
                # The client went away (or the task was cancelled): keep what we have.
                await asyncio.shield(
                    self._finish(turn, parts, usage, started, "cancelled", None, source)
                )
        await self._finish(turn, parts, usage, started, "complete", None, source)
        yield TurnEvent("usage", {"usage": message_from_values(turn.assistant).usage})
        yield TurnEvent("done", {"assistant_message": message_from_values(turn.assistant)})

    async def _finish(
        self,
        turn: Turn,
        parts: list[str],
        usage: Usage | None,
        started: float,
        status: str,
        error: LLMError | None,
        source: LLMProvider,
    ) -> None:
        text = "".join(parts)
        model = turn.request.model or source.model
        prompt_tokens = usage.prompt_tokens if usage else int(turn.manifest["total_tokens"])
        completion_tokens = usage.completion_tokens if usage else self.counter.count(text)
        cost = self._cost(model, prompt_tokens, completion_tokens)
        done = utcnow()
        values = {
            "mid": turn.assistant["id"],
            "content": text,
            "status": status,
            "error_code": error.code if error else None,
            "error_message": error.message[:500] if error else None,
            "provider": source.name,
            "model": model,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "cost_usd": cost,
            "context_manifest": turn.manifest,
            "citations": citations(text, turn.grounding.sources) if turn.grounding else None,
            "completed_at": done,
        }
        totals = {
            "cid": turn.conversation_id,
            "p": prompt_tokens,
            "ct": completion_tokens,
            "cost": cost or 0.0,
            "preview": text[: store.PREVIEW_CHARS] or turn.user["content"][: store.PREVIEW_CHARS],
            "now": done,
        }
        try:
            await self.runner.run(lambda conn: store.finish_message(conn, values, totals))
        finally:
            self.leases.release(turn.assistant["id"])
        metrics.record_turn(source.name, model, status, prompt_tokens, completion_tokens, cost)
        self.on_event(
            turn.owner_id,
            "message.completed" if status == "complete" else f"message.{status}",
            {
                **self._ids(turn),
                "status": status,
                "provider": source.name,
                "model": model,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "cost_usd": cost,
                "error_code": values["error_code"],
            },
        )
        del values["mid"]
        turn.assistant.update(values)
        if error is not None:
            log.warning("turn failed: %s (%s)", error.code, type(error).__name__)
        if status == "complete" and turn.unsummarized:
            self._spawn(self._refresh_summary(turn))
        if status == "complete" and turn.auto_title and self.settings.llm_titles and text:
            self._spawn(self._write_title(turn, text))

    async def _write_title(self, turn: Turn, reply: str) -> None:
        request = ChatRequest(
            messages=[
                ChatMessage("system", TITLE_PROMPT),
                ChatMessage(
                    "user", f"User: {turn.user['content'][:1000]}\nAssistant: {reply[:1000]}"
                ),
            ],
            max_tokens=24,
            temperature=0.2,
        )
        try:
            result = await self.provider.complete(request)
        except LLMError:
            return  # the first words of the question remain the title
        title = clean_title(result.text, self.settings.title_max_chars)
        if title:
            old = turn.title
            await self.runner.run(
                lambda conn: store.set_title(conn, turn.conversation_id, old, title)
            )

    async def _refresh_summary(self, turn: Turn) -> None:
        dropped = turn.unsummarized
        summary = await self.summarizer.refresh(turn.summary, dropped)
        last = dropped[-1].id
        await self.runner.run(
            lambda conn: store.save_summary(conn, turn.conversation_id, summary, last)
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background work (summaries) to finish."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        price = self.settings.llm_prices.get(model)
        if price is None:
            return None
        return round((prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000, 8)

    def turn_ids(self, turn: Turn) -> dict[str, Any]:
        """The ids a turn's `start` event carries."""
        return self._ids(turn)

    @staticmethod
    def _ids(turn: Turn) -> dict[str, Any]:
        return {
            "conversation_id": turn.conversation_id,
            "user_message_id": turn.user["id"],
            "assistant_message_id": turn.assistant["id"],
        }

    def turn_public(self, turn: Turn) -> TurnPublic:
        """The API shape of a turn as it stands."""
        assistant: MessagePublic = message_from_values(turn.assistant)
        return TurnPublic(
            conversation_id=turn.conversation_id,
            title=turn.title,
            mode=turn.mode,
            user_message=message_from_values(turn.user),
            assistant_message=assistant,
            assistant_response=assistant.content,
        )
