"""Work after a complete turn, off the request path: the running summary and the title."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from botgpt.config import Settings
from botgpt.conversations import store
from botgpt.conversations.answer_cache import AnswerCache
from botgpt.conversations.prompts import TITLE_PROMPT, clean_title
from botgpt.conversations.records import Turn
from botgpt.llm.base import ChatMessage, ChatRequest
from botgpt.llm.context import Summarizer
from botgpt.llm.errors import LLMError
from botgpt.llm.tokens import get_counter
from botgpt.sqlrunner import SqlRunner

log = logging.getLogger("botgpt.turn")


class Followups:
    """Folds dropped messages into the running summary and writes titles, in the background."""

    def __init__(
        self, settings: Settings, runner: SqlRunner, answers: AnswerCache | None = None
    ) -> None:
        self.settings = settings
        self.runner = runner
        self.answers = answers
        self._background: set[asyncio.Task[None]] = set()

    def after(self, turn: Turn, reply: str) -> None:
        """Start what a complete turn calls for (nothing waits for it)."""
        if turn.unsummarized:
            self._spawn(self._refresh_summary(turn))
        if turn.auto_title and turn.profile.model_titles and reply and turn.canned is None:
            self._spawn(self._write_title(turn, reply))
        if turn.cache_key is not None and self.answers is not None and reply:
            self._spawn(
                self.answers.put(turn.cache_key, turn.owner_id, reply, turn.assistant.citations)
            )

    async def _refresh_summary(self, turn: Turn) -> None:
        dropped = turn.unsummarized
        model = turn.request.model or turn.provider.model
        summarizer = Summarizer(turn.provider, counter=get_counter(model))
        summary = await summarizer.refresh(turn.summary, dropped)
        last = dropped[-1].id
        await self.runner.run_single(
            lambda conn: store.save_summary(conn, turn.conversation_id, summary, last)
        )

    async def _write_title(self, turn: Turn, reply: str) -> None:
        request = ChatRequest(
            messages=[
                ChatMessage("system", TITLE_PROMPT),
                ChatMessage("user", f"User: {turn.user.content[:1000]}\nAssistant: {reply[:1000]}"),
            ],
            model=turn.request.model,
            max_tokens=24,
            temperature=0.2,
        )
        try:
            result = await turn.provider.complete(request)
        except LLMError:
            return  # the first words of the question remain the title
        title = clean_title(result.text, self.settings.title_max_chars)
        if title:
            old = turn.title
            await self.runner.run_single(
                lambda conn: store.set_title(conn, turn.conversation_id, old, title)
            )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background work to finish (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
