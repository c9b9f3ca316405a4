"""Deadlines for providers that have no timeouts of their own.

`DeadlineProvider` wraps such a provider (the in-process model, which has no
network layer to time out) with a first-token deadline and an optional total
deadline, raising `ProviderTimeout` like the HTTP providers do. Deadlines are
enforced around each wait for the inner stream, never across a `yield`, so a
slow consumer is never cancelled by them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from botgpt.llm.base import ChatChunk, ChatRequest, LLMProvider
from botgpt.llm.errors import ProviderTimeout
from botgpt.llm.wrapping import closing_stream, copy_capabilities

__all__ = ["DeadlineProvider"]


class DeadlineProvider(LLMProvider):
    """Wraps a provider that has no timeouts of its own (e.g. the in-process model).

    `first_token_timeout` bounds the wait from the start of the call to the first
    chunk with text; `total_timeout` (None: unbounded) bounds the whole call. As
    in the HTTP providers, deadlines are enforced around each wait for the inner
    stream, never across a `yield`, so a slow consumer is not cancelled by them.
    An expired deadline cancels the inner stream and raises `ProviderTimeout`.
    """

    def __init__(
        self,
        inner: LLMProvider,
        first_token_timeout: float,
        total_timeout: float | None = None,
    ) -> None:
        self.inner = inner
        copy_capabilities(self, inner)
        self.first_token_timeout = first_token_timeout
        self.total_timeout = total_timeout

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Stream from the inner provider under the first-token and total deadlines."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        total = None if self.total_timeout is None else start + self.total_timeout
        first = start + self.first_token_timeout
        if total is not None:
            first = min(first, total)
        seen_text = False
        async with closing_stream(self.inner.stream(request)) as chunks:
            while True:
                deadline = total if seen_text else first
                what = "streaming the reply" if seen_text else "waiting for the first token"
                try:
                    async with asyncio.timeout_at(deadline):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                except TimeoutError as exc:
                    raise ProviderTimeout(f"{self.name}: timed out {what}") from exc
                if chunk.delta:
                    seen_text = True
                yield chunk

    async def aclose(self) -> None:
        """Close the inner provider."""
        await self.inner.aclose()
