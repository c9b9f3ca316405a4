"""Generating a prepared turn: stream the reply, then store its outcome.

The reply streams as events (start, delta..., usage, done | error); the text so far is
saved periodically; whatever happens to the provider or the client, the assistant message
ends `complete`, `failed` or `cancelled` with what was generated, its usage, cost and
latency, and the turn's metrics and domain events are recorded once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from botgpt.config import Settings
from botgpt.conversations import store
from botgpt.conversations.checking import SupportChecker
from botgpt.conversations.grounding import citations
from botgpt.conversations.leases import LiveReplies
from botgpt.conversations.records import Turn, TurnEvent
from botgpt.conversations.views import message_public
from botgpt.events import EventSink, no_events
from botgpt.ids import utcnow
from botgpt.llm.base import ChatChunk, LLMProvider, Usage
from botgpt.llm.errors import LLMError, client_error
from botgpt.llm.resilience import stream_with_source
from botgpt.llm.tokens import get_counter
from botgpt.observability import metrics
from botgpt.retrieval.embedders import EmbeddingError
from botgpt.sqlrunner import SqlRunner

log = logging.getLogger("botgpt.turn")


async def _canned(provider: LLMProvider, text: str) -> AsyncIterator[tuple[LLMProvider, ChatChunk]]:
    """A fixed reply shaped like a provider stream (no model call, no tokens)."""
    yield provider, ChatChunk(delta=text)
    yield provider, ChatChunk(usage=Usage(0, 0), finish_reason="stop")


class Generator:
    """Runs prepared turns against their provider and stores the outcome."""

    def __init__(
        self,
        settings: Settings,
        runner: SqlRunner,
        leases: LiveReplies,
        checker: SupportChecker | None = None,
    ) -> None:
        self.settings = settings
        self.runner = runner
        self.leases = leases
        self.checker = checker or SupportChecker(None)
        self.on_event: EventSink = no_events
        self.on_finished: Any = None  # follow-up work (titles, summaries) after a complete turn

    async def events(self, turn: Turn) -> AsyncIterator[TurnEvent]:
        """Stream a turn: start, deltas, usage, then done or error; persists the outcome."""
        mid = turn.assistant.id
        parts: list[str] = []
        usage: Usage | None = None
        started = time.perf_counter()
        flushed = started
        outcome = "cancelled"
        source: LLMProvider = turn.provider
        stream = (
            _canned(turn.provider, turn.canned)
            if turn.canned is not None
            else stream_with_source(turn.provider, turn.request)
        )
        check = self.checker.begin(turn)  # grounded replies: checked against their sources
        # Held from here until `_finish` stored the outcome: the lease stays fresh meanwhile.
        self.leases.hold(mid, turn.assistant.lease_expires_at)
        try:
            # Inside the try: a client gone right at the start still settles the reply.
            yield TurnEvent("start", turn.ids())
            async for answered, chunk in stream:
                source = answered  # a fallback may answer instead of the primary
                if chunk.delta:
                    if not parts:
                        elapsed = time.perf_counter() - started
                        metrics.FIRST_TOKEN.labels(answered.name).observe(elapsed)
                    parts.append(chunk.delta)
                    if check is None or not check.buffered:
                        yield TurnEvent("delta", {"text": chunk.delta})
                    now = time.perf_counter()
                    if now - flushed >= self.settings.stream_flush_seconds:
                        flushed = now
                        self.leases.progress(mid, "".join(parts))  # batched, not awaited
                if chunk.usage is not None:
                    usage = chunk.usage
            if check is not None:
                text = "".join(parts)
                try:
                    checked = await check.check(text)
                    turn.assistant.support = checked.as_dict()
                    text = checked.text
                except EmbeddingError:  # no verdict: the reply goes out unchecked, as it was
                    log.warning("support check unavailable; reply not checked")
                if check.buffered:
                    yield TurnEvent("delta", {"text": text})
                parts = [text]
            outcome = "complete"
        except LLMError as error:
            unseen = check is not None and (not parts or check.buffered)
            quoted = await check.quotes() if check is not None and unseen else None
            if quoted is None:
                outcome = "failed"
                await self._finish(turn, parts, usage, started, "failed", error, source)
                yield TurnEvent("error", {**client_error(error), "cause": error})
                return
            # A grounded turn whose model is down answers with quotes from its sources.
            parts = [quoted[0]]
            turn.assistant.support, turn.assistant.source = quoted[1], "extractive"
            turn.canned = quoted[0]  # no model wrote it: no provider, model or tokens
            usage = Usage(0, 0)
            yield TurnEvent("delta", {"text": quoted[0]})
            outcome = "complete"
        finally:
            if check is not None:
                check.cancel()
            if outcome == "cancelled":
                # The client went away (or the task was cancelled): keep what we have.
                await asyncio.shield(
                    self._finish(turn, parts, usage, started, "cancelled", None, source)
                )
        await self._finish(turn, parts, usage, started, "complete", None, source)
        message = message_public(turn.assistant)
        yield TurnEvent("usage", {"usage": message.usage})
        yield TurnEvent("done", {"assistant_message": message})

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
        canned = turn.canned is not None
        model = turn.request.model or source.model
        prompt_tokens = usage.prompt_tokens if usage else int(turn.manifest["total_tokens"])
        completion_tokens = usage.completion_tokens if usage else get_counter(model).count(text)
        cost = self._cost(model, prompt_tokens, completion_tokens)
        done = utcnow()
        assistant = turn.assistant
        assistant.content = text
        assistant.status = status
        assistant.error_code = error.code if error else None
        assistant.error_message = error.message[:500] if error else None
        # A reply given without the model names no model and costs nothing.
        assistant.provider = None if canned else source.name
        assistant.model = None if canned else model
        assistant.prompt_tokens = prompt_tokens
        assistant.completion_tokens = completion_tokens
        assistant.latency_ms = round((time.perf_counter() - started) * 1000, 2)
        assistant.cost_usd = cost
        assistant.context_manifest = turn.manifest
        if turn.grounding is not None:
            assistant.citations = citations(text, turn.grounding.sources)
        else:
            assistant.citations = turn.canned_citations
        assistant.completed_at = done
        values = {
            "mid": assistant.id,
            **{k: getattr(assistant, k) for k in _FINISHED},
        }
        totals = {
            "cid": turn.conversation_id,
            "p": prompt_tokens,
            "ct": completion_tokens,
            "cost": cost or 0.0,
            "preview": text[: store.PREVIEW_CHARS] or turn.user.content[: store.PREVIEW_CHARS],
            "now": done,
        }
        try:
            await self.runner.run_single(lambda conn: store.finish_message(conn, values, totals))
        finally:
            self.leases.release(assistant.id)
        metrics.record_turn(
            assistant.provider or "none", model, status, prompt_tokens, completion_tokens, cost
        )
        self.on_event(
            turn.owner_id,
            "message.completed" if status == "complete" else f"message.{status}",
            {
                **turn.ids(),
                "status": status,
                "provider": assistant.provider,
                "model": assistant.model,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "cost_usd": cost,
                "error_code": assistant.error_code,
                "source": assistant.source,
                "bot_id": turn.profile.bot_id,
            },
        )
        if error is not None:
            log.warning("turn failed: %s (%s)", error.code, type(error).__name__)
        if status == "complete" and self.on_finished is not None:
            self.on_finished(turn, text)

    def _cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        price = self.settings.llm_prices.get(model)
        if price is None:
            return None
        return round((prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000, 8)


# The columns a finished reply writes (with its id as `mid`).
_FINISHED = (
    "content",
    "status",
    "error_code",
    "error_message",
    "provider",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "cost_usd",
    "context_manifest",
    "citations",
    "completed_at",
    "source",
    "faq_id",
    "support",
)
