"""The provider interface every LLM backend implements."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a prompt."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A provider-neutral chat completion request."""

    messages: Sequence[ChatMessage]
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as reported by the provider."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class ChatChunk:
    """One streamed piece: a text delta, and/or final usage and finish reason."""

    delta: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None


@dataclass(slots=True)
class ChatResult:
    """A whole completion, collected from a stream."""

    text: str
    model: str
    usage: Usage | None = None
    finish_reason: str | None = None
    chunks: list[str] = field(default_factory=list)


class LLMProvider(abc.ABC):
    """A chat model reachable through one async streaming method.

    Implementations translate a `ChatRequest` into their wire format, call the
    backend and yield `ChatChunk`s as text arrives; the last chunk carries usage
    when the backend reports it. Failures are raised as `botgpt.llm.errors.LLMError`
    subclasses (never raw httpx/transport errors) so the resilience layer can
    decide whether to retry. Capability flags tell callers what the model supports.
    """

    name: str = "provider"
    model: str = "unknown"
    supports_streaming: bool = True
    supports_system_prompt: bool = True
    supports_usage: bool = True
    context_window: int = 8192

    @abc.abstractmethod
    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Yield chunks of the reply to `request`."""

    async def complete(self, request: ChatRequest) -> ChatResult:
        """Run `stream` to the end and collect the reply."""
        parts: list[str] = []
        usage: Usage | None = None
        finish: str | None = None
        async for chunk in self.stream(request):
            if chunk.delta:
                parts.append(chunk.delta)
            if chunk.usage is not None:
                usage = chunk.usage
            if chunk.finish_reason is not None:
                finish = chunk.finish_reason
        return ChatResult(
            text="".join(parts),
            model=request.model or self.model,
            usage=usage,
            finish_reason=finish,
            chunks=parts,
        )

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections or model memory."""
