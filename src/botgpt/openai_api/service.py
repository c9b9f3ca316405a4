"""OpenAI-compatible chat completions over the configured provider, and OpenAI-shaped errors."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from botgpt import exceptions as exc
from botgpt.config import Settings
from botgpt.errors import llm_error_payload, status_for_domain, status_for_llm
from botgpt.llm.base import ChatChunk, ChatMessage, ChatRequest, LLMProvider, Role, Usage
from botgpt.llm.errors import LLMError
from botgpt.llm.tokens import TokenCounter, get_counter
from botgpt.openai_api.schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionCreate,
    ChatMessageIn,
    Choice,
    ChunkChoice,
    ChunkDelta,
    CompletionUsage,
    Model,
    ModelList,
    OpenAIErrorBody,
    OpenAIErrorResponse,
)

log = logging.getLogger("botgpt.openai_api")

#: Extra names `/v1/chat/completions` accepts for the configured model.
MODEL_ALIASES = ("botgpt",)

_STARTED = int(time.time())
_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
}
_FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "max_tokens": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "function_call",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
_ERROR_CODES = {
    401: "invalid_api_key",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limit_exceeded",
}


class OpenAIError(Exception):
    """A failure reported in OpenAI's error envelope with an HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_ or _ERROR_TYPES.get(status, "server_error" if status >= 500 else "error")
        self.param = param
        self.code = code
        self.headers = headers

    def envelope(self) -> OpenAIErrorResponse:
        """The `{"error": {...}}` envelope."""
        error = OpenAIErrorBody(
            message=self.message, type=self.type, param=self.param, code=self.code
        )
        return OpenAIErrorResponse(error=error)


def _param(loc: tuple[int | str, ...] | list[int | str]) -> str | None:
    """A pydantic error location as OpenAI names a parameter, e.g. `messages[0].content`."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        elif "[" in part or part in ("str", "int", "float", "bool", "none"):
            continue  # a union member's tag, not a field
        else:
            name += f".{part}" if name else part
    return name or None


def _validation_error(error: RequestValidationError) -> OpenAIError:
    errors = list(error.errors())
    if not errors:
        return OpenAIError(400, "The request is invalid.")
    # With unions (`content`: string or parts) the deepest error names the real problem.
    first = max(errors, key=lambda e: len(tuple(e.get("loc", ()))))
    message = str(first.get("msg", "Invalid value.")).removeprefix("Value error, ")
    param = _param(tuple(first.get("loc", ())))
    if first.get("type") == "json_invalid":
        return OpenAIError(400, "The request body is not valid JSON.", code="invalid_json")
    if first.get("type") == "missing" and param:
        return OpenAIError(400, f"Missing required parameter: '{param}'.", param=param)
    return OpenAIError(
        400, f"Invalid value for '{param}': {message}" if param else message, param=param
    )


def _llm_error(error: LLMError) -> OpenAIError:
    payload = llm_error_payload(error)
    headers = None
    if error.retry_after is not None:
        headers = {"Retry-After": str(max(1, round(error.retry_after)))}
    return OpenAIError(
        status_for_llm(error),
        payload["message"],
        type_="server_error",
        code=payload["code"],
        headers=headers,
    )


def to_openai_error(error: Exception) -> OpenAIError:
    """Translate any failure of a `/v1` request into an `OpenAIError` (never leaking internals)."""
    if isinstance(error, OpenAIError):
        return error
    if isinstance(error, RequestValidationError):
        return _validation_error(error)
    if isinstance(error, LLMError):
        return _llm_error(error)
    if isinstance(error, exc.ProviderFailed) and isinstance(error.cause, LLMError):
        return _llm_error(error.cause)
    if isinstance(error, exc.DomainError):
        status = status_for_domain(error)
        headers = None
        if isinstance(error, exc.AuthenticationFailed):
            headers = {"WWW-Authenticate": "Bearer"}
        if isinstance(error, exc.RateLimited) and error.retry_after is not None:
            headers = {"Retry-After": str(max(1, round(error.retry_after)))}
        code = _ERROR_CODES.get(status, error.code)
        return OpenAIError(status, error.message, code=code, headers=headers)
    if isinstance(error, StarletteHTTPException):
        message = error.detail if isinstance(error.detail, str) else "Request failed."
        return OpenAIError(
            error.status_code,
            message,
            code=_ERROR_CODES.get(error.status_code),
            headers=dict(error.headers) if error.headers else None,
        )
    log.error("unhandled error in the OpenAI-compatible API", exc_info=error)
    return OpenAIError(500, "The server had an error while processing your request.")


def sse_frame(data: str) -> str:
    """One server-sent event carrying `data` (a JSON document or `[DONE]`)."""
    return f"data: {data}\n\n"


def _finish_reason(raw: str | None) -> str:
    return _FINISH_REASONS.get(raw or "stop", "stop")


async def _close(source: AsyncIterator[Any]) -> None:
    """Close an async generator even inside a cancelled scope (client gone)."""
    if isinstance(source, AsyncGenerator):
        with anyio.CancelScope(shield=True):
            await source.aclose()


@dataclass(slots=True)
class PreparedCompletion:
    """A validated completion request, ready for the provider."""

    id: str
    created: int
    model: str
    request: ChatRequest
    prompt_tokens: int
    counter: TokenCounter
    include_usage: bool


@dataclass(slots=True)
class CompletionStream:
    """A started provider stream rendered as OpenAI `chat.completion.chunk` events.

    The first provider chunk has already been received (so a failure before any text
    is an HTTP error, not a broken stream). `events()` yields SSE frames; `aclose()`
    stops consuming the provider, and is safe to call more than once.
    """

    prepared: PreparedCompletion
    source: AsyncIterator[ChatChunk]
    first: ChatChunk | None
    _events: AsyncGenerator[str, None] | None = field(default=None, init=False)

    def events(self) -> AsyncGenerator[str, None]:
        """The SSE frames of the completion, ending with `[DONE]` or an error event."""
        if self._events is None:
            self._events = self._render()
        return self._events

    async def aclose(self) -> None:
        """Stop the event generator and the provider stream."""
        if self._events is not None:
            await _close(self._events)
        await _close(self.source)

    def _chunk(
        self,
        delta: ChunkDelta,
        finish_reason: str | None = None,
    ) -> str:
        p = self.prepared
        chunk = ChatCompletionChunk(
            id=p.id,
            created=p.created,
            model=p.model,
            choices=[ChunkChoice(delta=delta, finish_reason=finish_reason)],
        )
        exclude = None if p.include_usage else {"usage"}
        return sse_frame(chunk.model_dump_json(exclude=exclude))

    async def _render(self) -> AsyncGenerator[str, None]:
        p = self.prepared
        parts: list[str] = []
        usage: Usage | None = None
        finish: str | None = None
        try:
            yield self._chunk(ChunkDelta(role="assistant", content=""))
            chunk = self.first
            while chunk is not None:
                if chunk.delta:
                    parts.append(chunk.delta)
                    yield self._chunk(ChunkDelta(content=chunk.delta))
                if chunk.usage is not None:
                    usage = chunk.usage
                if chunk.finish_reason is not None:
                    finish = chunk.finish_reason
                chunk = await anext(self.source, None)
            yield self._chunk(ChunkDelta(), _finish_reason(finish))
            if p.include_usage:
                final = ChatCompletionChunk(
                    id=p.id,
                    created=p.created,
                    model=p.model,
                    choices=[],
                    usage=_usage(p, usage, "".join(parts)),
                )
                yield sse_frame(final.model_dump_json())
            yield sse_frame("[DONE]")
        except Exception as error:  # a failure after the stream started: report, then end
            if isinstance(error, LLMError):
                log.warning("streamed completion failed: %s", error.code)
            failure = to_openai_error(error)
            yield sse_frame(failure.envelope().model_dump_json())
        finally:
            await _close(self.source)


def _usage(p: PreparedCompletion, reported: Usage | None, text: str) -> CompletionUsage:
    """The provider's token counts, or offline counts when it reported none."""
    if reported is not None:
        prompt, completion = reported.prompt_tokens, reported.completion_tokens
    else:
        prompt, completion = p.prompt_tokens, p.counter.count(text)
    return CompletionUsage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


class OpenAICompatService:
    """Serves OpenAI chat completions and model listings from one provider."""

    def __init__(
        self, provider: LLMProvider, settings: Settings, embedding_model: str | None = None
    ) -> None:
        self.provider = provider
        self.settings = settings
        self.embedding_model = embedding_model

    def list_models(self) -> ModelList:
        """The chat model (and the embedding model, when known), as OpenAI's model list."""
        models = [Model(id=self.provider.model, created=_STARTED, owned_by=self.provider.name)]
        if self.embedding_model:
            models.append(Model(id=self.embedding_model, created=_STARTED, owned_by="botgpt"))
        return ModelList(data=models)

    def resolve_model(self, name: str) -> str:
        """The served model for a requested name, or a 404 `model_not_found`."""
        if name == self.provider.model or name in MODEL_ALIASES:
            return self.provider.model
        raise OpenAIError(
            404,
            f"The model '{name}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )

    def _messages(self, messages: list[ChatMessageIn]) -> list[ChatMessage]:
        converted = [ChatMessage(_ROLES[m.role], m.text()) for m in messages]
        if self.provider.supports_system_prompt:
            return converted
        system = "\n\n".join(m.content for m in converted if m.role == "system")
        rest = [m for m in converted if m.role != "system"]
        if system:
            index = next((i for i, m in enumerate(rest) if m.role == "user"), None)
            if index is None:
                rest.insert(0, ChatMessage("user", system))
            else:
                rest[index] = ChatMessage("user", f"{system}\n\n{rest[index].content}")
        return rest

    def prepare(self, body: ChatCompletionCreate) -> PreparedCompletion:
        """Validate the model and the prompt's size; build the provider request."""
        model = self.resolve_model(body.model)
        messages = self._messages(body.messages)
        counter = get_counter(model)
        prompt_tokens = counter.count_messages(messages)
        window = self.provider.context_window
        requested = body.reply_limit
        needed = prompt_tokens + (requested or 1)
        if needed > window:
            detail = f"{prompt_tokens} in the messages"
            if requested:
                detail += f", {requested} in the completion"
            raise OpenAIError(
                400,
                f"This model's maximum context length is {window} tokens. However, you "
                f"requested {needed} tokens ({detail}). Please reduce the length of the "
                "messages or completion.",
                param="messages",
                code="context_length_exceeded",
            )
        max_tokens = requested or min(self.settings.llm_max_tokens, window - prompt_tokens)
        temperature = body.temperature
        request = ChatRequest(
            messages=messages,
            model=model,
            max_tokens=max_tokens,
            temperature=self.settings.llm_temperature if temperature is None else temperature,
        )
        return PreparedCompletion(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=model,
            request=request,
            prompt_tokens=prompt_tokens,
            counter=counter,
            include_usage=body.include_usage,
        )

    async def complete(self, prepared: PreparedCompletion) -> ChatCompletion:
        """Run the completion to the end and return the `chat.completion` object."""
        result = await self.provider.complete(prepared.request)
        return ChatCompletion(
            id=prepared.id,
            created=prepared.created,
            model=prepared.model,
            choices=[
                Choice(
                    message=AssistantMessage(content=result.text),
                    finish_reason=_finish_reason(result.finish_reason),
                )
            ],
            usage=_usage(prepared, result.usage, result.text),
        )

    async def start_stream(self, prepared: PreparedCompletion) -> CompletionStream:
        """Start the provider stream and wait for its first chunk (failures raise here)."""
        source = self.provider.stream(prepared.request)
        try:
            first = await anext(source, None)
        except BaseException:
            await _close(source)
            raise
        return CompletionStream(prepared, source, first)
