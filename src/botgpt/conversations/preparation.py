"""Preparing a turn: store the question and a pending reply, then build the prompt.

The question is committed before any model is called, so it survives every failure. A
grounded turn's documents are checked before anything is written (a refused turn stores
nothing). The prompt follows the turn's profile: its system prompt, memory window,
context budget and grounding settings; an FAQ match or "nothing relevant in the
documents" becomes a reply given without the model.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import Connection

from botgpt.config import Settings
from botgpt.conversations import store
from botgpt.conversations.answer_cache import AnswerCache, cache_key
from botgpt.conversations.grounding import Grounder, Grounding
from botgpt.conversations.leases import LiveReplies
from botgpt.conversations.profile import TurnProfile
from botgpt.conversations.prompts import make_title, system_prompt
from botgpt.conversations.records import MessageRecord, Turn, TurnRequest
from botgpt.conversations.store import HistoryRow
from botgpt.events import EventSink, no_events
from botgpt.exceptions import Conflict, InvalidInput, NotFound, UnsupportedMode
from botgpt.ids import new_id, utcnow
from botgpt.llm.base import ChatRequest
from botgpt.llm.context import ContextBudgetError, RunningSummary, build_context, effective_budget
from botgpt.llm.pool import ProviderPool
from botgpt.llm.tokens import TokenCounter, get_counter
from botgpt.sqlrunner import SqlRunner


class FaqAnswer(Protocol):
    """An FAQ that answers a question (the FAQ service's rows fit)."""

    @property
    def id(self) -> str:
        """The FAQ's id."""
        ...

    @property
    def answer(self) -> str:
        """The answer text."""
        ...


class FaqMatcher(Protocol):
    """What FAQ-first answers need from the FAQs domain (`FaqService`)."""

    async def best_match(
        self, owner_id: str, question: str, min_score: float
    ) -> tuple[Any, float] | None:
        """The owner's active FAQ closest to the question, if it reaches `min_score`."""
        ...


class Preparer:
    """Stores a turn's messages and builds its prompt."""

    def __init__(
        self,
        settings: Settings,
        runner: SqlRunner,
        providers: ProviderPool,
        grounder: Grounder | None = None,
        faqs: FaqMatcher | None = None,
        leases: LiveReplies | None = None,
        answers: AnswerCache | None = None,
    ) -> None:
        self.settings = settings
        self.runner = runner
        self.providers = providers
        self.grounder = grounder
        self.faqs = faqs
        self.leases = leases
        self.answers = answers
        self.on_event: EventSink = no_events
        self._counters: dict[str, TokenCounter] = {}

    async def prepare(self, request: TurnRequest, profile: TurnProfile) -> Turn:
        """Store the turn's messages and build its prompt."""
        if request.regenerate is not None:
            return await self._regenerate(request, profile)
        if request.conversation_id is None:
            return await self._start(request, profile)
        return await self._send(request, profile)

    # -- the three ways a turn begins ---------------------------------------------------------
    async def _start(self, request: TurnRequest, profile: TurnProfile) -> Turn:
        document_ids = list(dict.fromkeys(request.document_ids or ()))
        if request.mode == "grounded" and not document_ids:
            raise InvalidInput(
                "Grounded mode answers from documents: pass document_ids of uploaded documents.",
                details={"mode": request.mode},
            )
        if document_ids:
            await self._scope_check(request.owner_id, document_ids)
        now = utcnow()
        conv_id = new_id()
        title = request.title or make_title(request.text, self.settings.title_max_chars)
        rows = self._pair(conv_id, 1, request.text, now, profile)
        visitor = request.visitor
        values = {
            "id": conv_id,
            "user_id": request.owner_id,
            "title": title,
            "mode": request.mode,
            "archived": False,
            "next_seq": 3,
            "message_count": 2,
            "last_message_preview": request.text[: store.PREVIEW_CHARS],
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost_usd": 0.0,
            "summary": None,
            "summary_message_id": None,
            "created_at": now,
            "updated_at": now,
            "bot_id": visitor.bot_id if visitor else None,
            "visitor_session": visitor.session if visitor else None,
            "visitor_id": visitor.visitor_id if visitor else None,
        }
        # Without documents this is one statement on PostgreSQL: no transaction around it.
        run = self.runner.run if document_ids else self.runner.run_single
        await run(lambda conn: store.insert_conversation(conn, values, rows, document_ids))
        self.on_event(
            request.owner_id,
            "conversation.created",
            {"conversation_id": conv_id, "mode": request.mode, "bot_id": values["bot_id"]},
        )
        user, assistant = rows
        turn = await self._build(
            request, profile, conv_id, title, request.mode, user, assistant, [], None, None,
            document_ids if request.mode == "grounded" else [],
        )  # fmt: skip
        turn.auto_title = request.title is None
        return turn

    async def _send(self, request: TurnRequest, profile: TurnProfile) -> Turn:
        conversation_id = request.conversation_id
        assert conversation_id is not None
        now = utcnow()
        named = request.document_ids
        new_scope = list(dict.fromkeys(named)) if named is not None else None
        if new_scope:
            await self._scope_check(request.owner_id, new_scope)
        checked = new_scope is not None

        def make_rows(user_seq: int) -> list[MessageRecord]:
            return self._pair(conversation_id, user_seq, request.text, now, profile)

        def append(conn: Connection, checked: bool) -> store.AppendResult:
            return store.append_user_message(
                conn, conversation_id, request.owner_id, request.text, now, make_rows,
                new_scope, checked,
            )  # fmt: skip

        result = None
        if new_scope is None and self.runner.single_statements:
            result = await self._append_single(request, profile, now)
        while result is None:
            try:
                result = await self.runner.run(functools.partial(append, checked=checked))
            except store.ScopeUnchecked as pending:
                # A grounded conversation: its documents must be ready before the question
                # is stored. The transaction was rolled back; check, then append for real.
                await self._scope_check(request.owner_id, pending.document_ids)
                checked = True
                continue
            if result is None:
                raise NotFound("Conversation not found.")
        appended, (user, assistant) = result
        # Documents named on the message ground this turn, whatever the conversation's mode.
        grounded_ids = new_scope if new_scope else appended.document_ids
        grounded = appended.mode == "grounded" or bool(new_scope)
        return await self._build(
            request, profile, conversation_id, appended.title, appended.mode, user, assistant,
            appended.history, appended.summary, appended.summary_message_id,
            grounded_ids if grounded else [],
        )  # fmt: skip

    async def _append_single(
        self, request: TurnRequest, profile: TurnProfile, now: Any
    ) -> store.AppendResult:
        """PostgreSQL: the pair stored and the history read in one statement (one round trip).

        None when that does not apply (a grounded conversation, or none of the owner's):
        the caller then takes the transaction, which tells the two apart.
        """
        conversation_id = request.conversation_id
        assert conversation_id is not None
        rows = self._pair(conversation_id, 0, request.text, now, profile)
        appended = await self.runner.run_single(
            lambda conn: store.append_pair(
                conn, conversation_id, request.owner_id, request.text, now, rows
            )
        )
        return None if appended is None else (appended, rows)

    async def _regenerate(self, request: TurnRequest, profile: TurnProfile) -> Turn:
        conversation_id, message_id = request.conversation_id, request.regenerate
        assert conversation_id is not None and message_id is not None
        now = utcnow()

        def stamp(row: MessageRecord) -> None:
            self._lease(row, profile)

        try:
            result = await self.runner.run(
                lambda conn: store.regenerate(
                    conn, conversation_id, request.owner_id, message_id, now, stamp
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
        return await self._build(
            request, profile, conversation_id, appended.title, appended.mode, user, assistant,
            appended.history, appended.summary, appended.summary_message_id,
            appended.document_ids,
        )  # fmt: skip

    # -- helpers ---------------------------------------------------------------------------------
    def _pair(
        self, conv_id: str, user_seq: int, text: str, now: Any, profile: TurnProfile
    ) -> list[MessageRecord]:
        user = store.message_row(conv_id, user_seq, "user", text, "complete", now)
        assistant = store.message_row(conv_id, user_seq + 1, "assistant", "", "pending", now)
        assistant.reply_to_id = user.id
        self._lease(assistant, profile)
        return [user, assistant]

    def _lease(self, reply: MessageRecord, profile: TurnProfile) -> None:
        """A new reply is this process's to generate (a lease), written by the profile's bot."""
        reply.bot_version = profile.bot_version
        if self.leases is not None:
            values = self.leases.lease_values()
            reply.lease_owner = values["lease_owner"]
            reply.lease_expires_at = values["lease_expires_at"]

    async def _scope_check(self, owner_id: str, document_ids: Sequence[str]) -> None:
        if self.grounder is None:
            raise UnsupportedMode("This server has no document store for grounded mode.")
        await self.grounder.scope.check_ready(owner_id, document_ids)

    def _counter(self, model: str) -> TokenCounter:
        counter = self._counters.get(model)
        if counter is None:
            counter = self._counters[model] = get_counter(model)
        return counter

    async def _build(
        self,
        request: TurnRequest,
        profile: TurnProfile,
        conv_id: str,
        title: str,
        mode: str,
        user: MessageRecord,
        assistant: MessageRecord,
        history: list[HistoryRow],
        summary: str | None,
        summary_message_id: str | None,
        grounded_ids: Sequence[str],
    ) -> Turn:
        """The prompt within the profile's budget, or a reply that needs no model."""
        provider = self.providers.get(profile.provider)
        counter = self._counter(profile.provider.model or provider.model)
        question = user.content
        canned = None
        faq = await self._faq(request.owner_id, question, profile)
        if faq is not None:
            canned = faq.answer
            assistant.source, assistant.faq_id = "faq", faq.id
        cache_key = None
        cached_citations = None
        if canned is None and profile.answer_cache and not history and self.answers is not None:
            cache_key = await self._cache_key(request.owner_id, profile, question, grounded_ids)
            hit = await self.answers.get(cache_key)
            if hit is not None:
                canned, cached_citations = hit.answer, hit.citations
                assistant.source, cache_key = "cached", None
        grounding: Grounding | None = None
        if canned is None and grounded_ids and self.grounder is not None:
            grounding = await self.grounder.ground(
                request.owner_id,
                grounded_ids,
                question,
                history,
                top_k=profile.grounding.top_k,
                min_score=profile.grounding.min_score,
            )
            if not grounding.sources:
                canned = profile.grounding.not_found_message
                assistant.source = "not_found"
        try:
            built = build_context(
                system_prompt=system_prompt(profile.system_prompt, request.language),
                history=[*history, HistoryRow(user.id, "user", question)],
                budget=effective_budget(
                    provider.context_window,
                    self.settings.reply_reserve_tokens,
                    profile.context_max_tokens,
                ),
                counter=counter,
                grounding=grounding.block if grounding else None,
                summary=RunningSummary(summary, summary_message_id) if summary else None,
                max_messages=profile.memory_messages,
            )
        except ContextBudgetError as e:
            raise InvalidInput("The system prompt does not fit the model's context.") from e
        manifest = built.manifest
        if grounding is not None:
            manifest["grounding"] = grounding.manifest()
        if assistant.source is None:
            assistant.source = "model"
        return Turn(
            conversation_id=conv_id,
            owner_id=request.owner_id,
            title=title,
            mode=mode,
            user=user,
            assistant=assistant,
            request=ChatRequest(
                messages=built.messages,
                model=profile.provider.model or None,
                max_tokens=profile.max_tokens,
                temperature=profile.temperature,
            ),
            manifest=manifest,
            profile=profile,
            provider=provider,
            summary=summary,
            unsummarized=list(built.unsummarized),
            grounding=grounding,
            canned=canned,
            canned_citations=cached_citations,
            cache_key=cache_key,
        )

    async def _cache_key(
        self, owner_id: str, profile: TurnProfile, question: str, document_ids: Sequence[str]
    ) -> str:
        """The answer-cache key: documents count with the time they last changed."""
        versions: list[tuple[str, str]] = []
        if document_ids and self.grounder is not None:
            docs = await self.grounder.scope.check_ready(owner_id, document_ids)
            versions = [(str(d.id), str(d.updated_at)) for d in docs]
        return cache_key(owner_id, profile, question, versions)

    async def _faq(self, owner_id: str, question: str, profile: TurnProfile) -> FaqAnswer | None:
        if not profile.grounding.faq_first or self.faqs is None:
            return None
        found = await self.faqs.best_match(owner_id, question, profile.grounding.faq_threshold)
        return None if found is None else found[0]
