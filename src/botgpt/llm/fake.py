"""A scripted provider for tests and benchmarks: queued replies, latency, injected errors."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from botgpt.llm.base import ChatChunk, ChatRequest, LLMProvider, Usage
from botgpt.llm.errors import LLMError


@dataclass(frozen=True, slots=True)
class FakeReply:
    """One scripted reply: text streamed in `chunk_size` pieces, optionally failing midway."""

    text: str = ""
    delay: float = 0.0
    chunk_delay: float = 0.0
    chunk_size: int = 8
    error: LLMError | None = None
    error_after_chunks: int = 0


class FakeProvider(LLMProvider):
    """Replies from a queue (`enqueue`), or echoes the last user message when it is empty."""

    name = "fake"
    supports_usage = True

    def __init__(self, model: str = "fake-model", context_window: int = 8192) -> None:
        self.model = model
        self.context_window = context_window
        self.queue: deque[FakeReply | LLMError | str | Callable[[ChatRequest], str]] = deque()
        self.requests: list[ChatRequest] = []
        self.default_delay = 0.0
        # While set and not yet fired, every reply waits for it before its first chunk.
        self.hold: asyncio.Event | None = None
        self.default_chunk_delay = 0.0  # between pieces of replies that set no chunk_delay

    def enqueue(self, *replies: FakeReply | LLMError | str | Callable[[ChatRequest], str]) -> None:
        """Queue replies for the next calls: text, an error to raise, a `FakeReply`, or a
        function of the request returning the text."""
        self.queue.extend(replies)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Yield the next scripted reply."""
        self.requests.append(request)
        item = self.queue.popleft() if self.queue else None
        if callable(item) and not isinstance(item, FakeReply):
            item = item(request)
        if isinstance(item, LLMError):
            raise item
        if item is None or isinstance(item, str):
            last = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
            item = FakeReply(text=item if isinstance(item, str) else f"You said: {last}")
        if self.hold is not None:
            await self.hold.wait()
        if item.delay or self.default_delay:
            await asyncio.sleep(item.delay or self.default_delay)
        pieces = [
            item.text[i : i + item.chunk_size] for i in range(0, len(item.text), item.chunk_size)
        ]
        for n, piece in enumerate(pieces):
            if item.error is not None and n == item.error_after_chunks:
                raise item.error
            if item.chunk_delay or self.default_chunk_delay:
                await asyncio.sleep(item.chunk_delay or self.default_chunk_delay)
            yield ChatChunk(delta=piece)
        if item.error is not None:
            raise item.error
        prompt = sum(len(m.content) for m in request.messages) // 4 + 1
        yield ChatChunk(
            usage=Usage(prompt_tokens=prompt, completion_tokens=max(1, len(item.text) // 4)),
            finish_reason="stop",
        )
