"""Helpers shared by the provider wrappers of the resilience layer.

`RetryingProvider` (`botgpt.llm.retry`), `BreakerProvider` (`botgpt.llm.breaker`),
`DeadlineProvider` (`botgpt.llm.deadline`) and `FallbackProvider`
(`botgpt.llm.fallback`) are all `LLMProvider`s wrapping other providers. They
share two small pieces kept here: `closing_stream`, which makes sure an inner
stream is closed even when the consumer stops early, and `copy_capabilities`,
which makes a wrapper advertise the name, model, context window and capability
flags of the provider it wraps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

from botgpt.llm.base import LLMProvider

__all__ = ["closing_stream", "copy_capabilities"]

_T = TypeVar("_T")


@asynccontextmanager
async def closing_stream(iterator: AsyncIterator[_T]) -> AsyncIterator[AsyncIterator[_T]]:
    """Close an async generator on exit, even when the consumer stopped early."""
    try:
        yield iterator
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


def copy_capabilities(target: LLMProvider, inner: LLMProvider) -> None:
    """Make a wrapper look like the provider it wraps."""
    target.name = inner.name
    target.model = inner.model
    target.context_window = inner.context_window
    target.supports_streaming = inner.supports_streaming
    target.supports_system_prompt = inner.supports_system_prompt
    target.supports_usage = inner.supports_usage
