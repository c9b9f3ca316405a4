"""The fallback chain: answer with the next provider when one fails before any text.

`FallbackProvider` tries its providers in order and hands a request to the next
one only while nothing has been streamed, so every reply comes from exactly one
provider. `stream_with_source` streams from any provider (a chain or a single
one) pairing each chunk with the provider that actually answered, which is how
callers record who answered without shared state. See `botgpt.llm.resilience`
for how the chain composes with retries and circuit breakers.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence

from botgpt.llm.base import ChatChunk, ChatRequest, ChatResult, LLMProvider, Usage
from botgpt.llm.errors import LLMError
from botgpt.llm.wrapping import closing_stream, copy_capabilities

__all__ = ["FallbackProvider", "stream_with_source"]

log = logging.getLogger("botgpt.llm")


class FallbackProvider(LLMProvider):
    """Tries a chain of providers in order; the next one takes over only before any text.

    A provider failing with any `LLMError` before it streamed text (after its
    own retries, or at once with `CircuitOpen`) hands the request to the next
    one; the last error is raised when every provider failed. A failure after
    text propagates at once, with the partial text already delivered. Chunks
    without text (usage, finish reason) are held back until the first text
    arrives or the stream ends, so everything a caller receives comes from
    exactly one provider. Fallback members get the request with `model=None`:
    a model name set on the request belongs to the primary.

    Which provider answered is reported per call, without shared state, by
    `stream_with_source`, which pairs each chunk with the chain member that
    produced it (use the module-level `stream_with_source` to handle any
    provider the same way). `name`, `model` and the capability flags are the
    primary's; `context_window` defaults to the smallest in the chain, because
    the prompt is built before it is known who will answer and must fit the
    fallback exactly when it is needed.
    """

    def __init__(
        self, providers: Sequence[LLMProvider], *, context_window: int | None = None
    ) -> None:
        if not providers:
            raise ValueError("FallbackProvider needs at least one provider")
        self.providers = list(providers)
        primary = self.providers[0]
        copy_capabilities(self, primary)
        self.context_window = context_window or min(p.context_window for p in self.providers)
        self.supports_streaming = all(p.supports_streaming for p in self.providers)
        self.supports_system_prompt = all(p.supports_system_prompt for p in self.providers)
        self.supports_usage = all(p.supports_usage for p in self.providers)

    async def stream_with_source(
        self, request: ChatRequest
    ) -> AsyncIterator[tuple[LLMProvider, ChatChunk]]:
        """Yield `(provider, chunk)` pairs, `provider` being the chain member that answers."""
        errors: list[tuple[LLMProvider, LLMError]] = []
        for index, provider in enumerate(self.providers):
            attempt = request if index == 0 else dataclasses.replace(request, model=None)
            held: list[ChatChunk] = []
            started = False
            try:
                async with closing_stream(provider.stream(attempt)) as chunks:
                    async for chunk in chunks:
                        if not started and not chunk.delta:
                            held.append(chunk)
                            continue
                        if not started:
                            started = True
                            if errors:
                                log.warning(
                                    "answering with fallback %s/%s after: %s",
                                    provider.name,
                                    provider.model,
                                    _describe(errors),
                                )
                            for early in held:
                                yield provider, early
                            held.clear()
                        yield provider, chunk
            except LLMError as error:
                if started:
                    raise
                errors.append((provider, error))
                continue
            for early in held:
                yield provider, early
            return
        log.warning("every provider failed: %s", _describe(errors))
        raise errors[-1][1]

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Yield the chunks of the first provider that answers."""
        async with closing_stream(self.stream_with_source(request)) as pairs:
            async for _, chunk in pairs:
                yield chunk

    async def complete(self, request: ChatRequest) -> ChatResult:
        """Collect the reply; `model` is that of the provider that actually answered."""
        parts: list[str] = []
        usage: Usage | None = None
        finish: str | None = None
        source: LLMProvider = self.providers[0]
        async with closing_stream(self.stream_with_source(request)) as pairs:
            async for answering, chunk in pairs:
                source = answering
                if chunk.delta:
                    parts.append(chunk.delta)
                if chunk.usage is not None:
                    usage = chunk.usage
                if chunk.finish_reason is not None:
                    finish = chunk.finish_reason
        model = request.model if source is self.providers[0] and request.model else source.model
        return ChatResult(
            text="".join(parts), model=model, usage=usage, finish_reason=finish, chunks=parts
        )

    async def aclose(self) -> None:
        """Close every provider of the chain (all of them, even if one fails to close)."""
        failures: list[BaseException] = []
        for provider in self.providers:
            try:
                await provider.aclose()
            except Exception as exc:  # pragma: no cover - defensive
                failures.append(exc)
        if failures:
            raise failures[0]


def _describe(errors: Sequence[tuple[LLMProvider, LLMError]]) -> str:
    return "; ".join(f"{p.name}/{p.model}: {e.code}" for p, e in errors)


async def _tag(
    provider: LLMProvider, request: ChatRequest
) -> AsyncIterator[tuple[LLMProvider, ChatChunk]]:
    async with closing_stream(provider.stream(request)) as chunks:
        async for chunk in chunks:
            yield provider, chunk


def stream_with_source(
    provider: LLMProvider, request: ChatRequest
) -> AsyncIterator[tuple[LLMProvider, ChatChunk]]:
    """Stream `request` from any provider, pairing each chunk with the provider that answered.

    For a `FallbackProvider` that is the chain member that took the call; for
    any other provider it is the provider itself. Read `.name` and `.model` of
    it to record who answered.
    """
    if isinstance(provider, FallbackProvider):
        return provider.stream_with_source(request)
    return _tag(provider, request)
