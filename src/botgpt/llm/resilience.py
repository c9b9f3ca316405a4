"""Retries with exponential backoff and jitter, honouring Retry-After, before the first token."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable

from botgpt.llm.base import ChatChunk, ChatRequest, LLMProvider
from botgpt.llm.errors import LLMError

log = logging.getLogger("botgpt.llm")

Sleep = Callable[[float], Awaitable[None]]


class RetryingProvider(LLMProvider):
    """Wraps a provider: a retryable failure before any text was streamed is tried again.

    Once a chunk of text has reached the caller a retry would duplicate it, so later
    failures propagate. Waits grow exponentially with full jitter; a provider's
    `Retry-After` is honoured (capped at `max_wait`).
    """

    def __init__(
        self,
        inner: LLMProvider,
        attempts: int = 3,
        base_wait: float = 0.5,
        max_wait: float = 20.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.context_window = inner.context_window
        self.supports_streaming = inner.supports_streaming
        self.supports_system_prompt = inner.supports_system_prompt
        self.supports_usage = inner.supports_usage
        self.attempts = attempts
        self.base_wait = base_wait
        self.max_wait = max_wait
        self._sleep = sleep

    def wait_for(self, attempt: int, error: LLMError) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        if error.retry_after is not None:
            return min(self.max_wait, max(0.0, error.retry_after))
        return random.uniform(0, min(self.max_wait, self.base_wait * 2 ** (attempt - 1)))

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Stream from the inner provider, retrying failures that happen before any text."""
        attempt = 0
        while True:
            attempt += 1
            started = False
            try:
                async for chunk in self.inner.stream(request):
                    if chunk.delta:
                        started = True
                    yield chunk
                return
            except LLMError as error:
                if started or not error.retryable or attempt >= self.attempts:
                    raise
                wait = self.wait_for(attempt, error)
                log.warning(
                    "provider %s failed (%s), retry %d in %.2fs",
                    self.name,
                    error.code,
                    attempt,
                    wait,
                )
                await self._sleep(wait)

    async def aclose(self) -> None:
        """Close the inner provider."""
        await self.inner.aclose()
