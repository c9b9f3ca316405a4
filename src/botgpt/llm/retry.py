"""Retries: `RetryingProvider` tries a provider again after a retryable failure.

A retry happens only while no text has been streamed to the caller (a retry after
that would duplicate it), with exponential backoff and full jitter, honouring a
provider's `Retry-After`. In the factory's chain it sits outside the circuit
breaker (`botgpt.llm.breaker`), so every real attempt is counted by the breaker
and an open breaker's `CircuitOpen` stops the retries at once; see
`botgpt.llm.resilience` for how the wrappers compose. `Sleep` is the type of the
injectable sleep function used by tests.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable

from botgpt.llm.base import ChatChunk, ChatRequest, LLMProvider
from botgpt.llm.errors import LLMError
from botgpt.llm.wrapping import closing_stream, copy_capabilities

__all__ = ["RetryingProvider", "Sleep"]

log = logging.getLogger("botgpt.llm")

Sleep = Callable[[float], Awaitable[None]]


class RetryingProvider(LLMProvider):
    """Wraps a provider: a retryable failure before any text was streamed is tried again.

    Once a chunk of text has reached the caller a retry would duplicate it, so later
    failures propagate. Waits grow exponentially with full jitter; a provider's
    `Retry-After` is honoured (capped at `max_wait`). Non-retryable errors,
    including `CircuitOpen` from a breaker inside, propagate at once.
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
        copy_capabilities(self, inner)
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
                async with closing_stream(self.inner.stream(request)) as chunks:
                    async for chunk in chunks:
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
