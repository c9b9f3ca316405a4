"""Anthropic Messages API (`POST /v1/messages`) with streaming.

Translation is pure (`build_messages_payload`, `AnthropicStreamState.handle`);
the HTTP call, timeouts and transport error mapping are the shared
`SSEHTTPStream` from `botgpt.llm.providers.sse`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from botgpt.llm.base import ChatChunk, ChatMessage, ChatRequest, LLMProvider, Usage
from botgpt.llm.errors import (
    LLMError,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderRequestError,
    ProviderTimeout,
    ProviderUnavailable,
)
from botgpt.llm.providers.sse import (
    SSEHTTPStream,
    StreamTimeouts,
    json_dumps,
    json_loads,
)

__all__ = [
    "ANTHROPIC_VERSION",
    "AnthropicProvider",
    "AnthropicStreamState",
    "build_messages_payload",
    "error_for_event",
    "merge_messages",
]

ANTHROPIC_VERSION: Final = "2023-06-01"
DEFAULT_MAX_TOKENS: Final = 1024

# Anthropic's stop reasons in the OpenAI vocabulary the rest of BOT GPT speaks.
_STOP_REASONS: Final[Mapping[str, str]] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Used when a history starts with the assistant: the API requires a user turn first.
_LEADING_USER_PLACEHOLDER: Final = "(conversation continues)"


def merge_messages(messages: Sequence[ChatMessage]) -> tuple[str | None, list[dict[str, str]]]:
    """Split out the system prompt and merge same-role runs so turns alternate from `user`."""
    system_parts: list[str] = []
    turns: list[dict[str, str]] = []
    for message in messages:
        if message.role == "system":
            if message.content.strip():
                system_parts.append(message.content)
            continue
        # Empty text blocks are rejected by the API; they carry nothing anyway.
        if not message.content.strip():
            continue
        if turns and turns[-1]["role"] == message.role:
            turns[-1]["content"] += "\n\n" + message.content
        else:
            turns.append({"role": message.role, "content": message.content})
    if turns and turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": _LEADING_USER_PLACEHOLDER})
    if turns and turns[-1]["role"] == "assistant":
        # A final assistant turn is a prefill, which may not end in whitespace.
        turns[-1]["content"] = turns[-1]["content"].rstrip()
    system = "\n\n".join(system_parts) if system_parts else None
    return system, turns


def build_messages_payload(
    request: ChatRequest,
    *,
    model: str,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Translate a `ChatRequest` into a streaming Messages API body."""
    system, turns = merge_messages(request.messages)
    if not turns:
        raise ProviderRequestError("anthropic: the request has no user or assistant message")
    payload: dict[str, Any] = {
        "model": request.model or model,
        "max_tokens": request.max_tokens if request.max_tokens is not None else default_max_tokens,
        "messages": turns,
        "stream": True,
    }
    if system is not None:
        payload["system"] = system
    if request.temperature is not None:
        # Anthropic accepts 0..1; OpenAI-style callers may send up to 2.
        payload["temperature"] = max(0.0, min(1.0, request.temperature))
    if extra:
        for key, value in extra.items():
            payload.setdefault(key, value)
    return payload


def error_for_event(error: Any, *, provider: str = "anthropic") -> LLMError:
    """Map the `error` object of an `error` stream event to a typed error."""
    kind = ""
    message = ""
    if isinstance(error, dict):
        kind = str(error.get("type") or "")
        message = str(error.get("message") or "")
    text = f"{provider}: {kind or 'error'}: {message}"[:400]
    if kind == "rate_limit_error":
        return ProviderRateLimited(text)
    if kind in ("overloaded_error", "api_error"):
        return ProviderUnavailable(text)
    if kind in ("authentication_error", "permission_error"):
        return ProviderAuthError(text)
    if kind in ("invalid_request_error", "not_found_error", "request_too_large"):
        return ProviderRequestError(text)
    if kind == "timeout_error":
        return ProviderTimeout(text)
    return ProviderUnavailable(text)


def _is_message_stop(data: bytes) -> bool:
    # A cheap byte test: inside a JSON string the quotes would be escaped, so a
    # text delta that mentions message_stop cannot match.
    return b'"message_stop"' in data


def _is_content_event(data: bytes) -> bool:
    # Only the preamble events (message_start, content_block_start, ping) come
    # before generation; anything else ends the first-token wait. A misread
    # here only changes which deadline applies, so a byte test is enough.
    if b'"message_start"' in data or b'"content_block_start"' in data:
        return False
    return not (len(data) < 40 and b'"ping"' in data)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(slots=True)
class AnthropicStreamState:
    """What one Messages stream has told us so far; `handle` folds in each event.

    `message_start` carries the input token count, `message_delta` the stop
    reason and the (cumulative) output count, `message_stop` ends the stream.
    `ping`, `content_block_start/stop` and non-text deltas (tool input,
    thinking) are ignored; unknown event types are too, as the API asks.
    """

    provider: str = "anthropic"
    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str | None = None
    stopped: bool = False

    def handle(self, event: Any) -> ChatChunk | None:
        """Apply one decoded event; return the chunk it produces, if any."""
        if not isinstance(event, dict):
            raise ProviderBadResponse(f"{self.provider}: stream event is not a JSON object")
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta")
            if not isinstance(delta, dict):
                raise ProviderBadResponse(f"{self.provider}: content_block_delta without delta")
            if delta.get("type") == "text_delta":
                text = delta.get("text")
                if not isinstance(text, str):
                    raise ProviderBadResponse(f"{self.provider}: text_delta without text")
                return ChatChunk(delta=text) if text else None
            return None
        if kind == "message_start":
            message = event.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            if isinstance(usage, dict):
                self.input_tokens = _int(usage.get("input_tokens")) or 0
                self.output_tokens = _int(usage.get("output_tokens")) or 0
            return None
        if kind == "message_delta":
            delta = event.get("delta")
            usage = event.get("usage")
            if isinstance(usage, dict):
                output = _int(usage.get("output_tokens"))
                if output is not None:
                    self.output_tokens = output
                # Newer API versions repeat (cumulative) input tokens here.
                given_input = _int(usage.get("input_tokens"))
                if given_input is not None:
                    self.input_tokens = given_input
            raw_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            if isinstance(raw_reason, str):
                self.stop_reason = _STOP_REASONS.get(raw_reason, raw_reason)
            return ChatChunk(
                usage=Usage(prompt_tokens=self.input_tokens, completion_tokens=self.output_tokens),
                finish_reason=self.stop_reason,
            )
        if kind == "message_stop":
            self.stopped = True
            return None
        if kind == "error":
            raise error_for_event(event.get("error"), provider=self.provider)
        return None


class AnthropicProvider(LLMProvider):
    """Claude models through Anthropic's streaming Messages API.

    System messages go to the top-level `system` field; consecutive messages of
    the same role are merged and a placeholder user turn is added when the
    history starts with the assistant, because the API requires alternating
    roles starting with `user`. `max_tokens` is mandatory there, so
    `default_max_tokens` (1024) fills it in. Usage comes from `message_start`
    (input) and `message_delta` (output); the final chunk carries both. HTTP,
    timeouts and error mapping are shared with `OpenAICompatProvider`; stream
    `error` events map by type (`overloaded_error` -> unavailable,
    `rate_limit_error` -> rate limited, ...).
    """

    supports_streaming = True
    supports_system_prompt = True
    supports_usage = True

    def __init__(
        self,
        api_key: str,
        model: str,
        base_url: str = "https://api.anthropic.com",
        *,
        connect_timeout: float = 10.0,
        first_token_timeout: float = 60.0,
        read_timeout: float = 30.0,
        total_timeout: float | None = 600.0,
        context_window: int = 200_000,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        anthropic_version: str = ANTHROPIC_VERSION,
        extra_body: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        name: str = "anthropic",
        session: aiohttp.ClientSession | None = None,
        max_connections: int = 1000,
    ) -> None:
        self.name = name
        self.model = model
        self.context_window = context_window
        self.base_url = base_url.rstrip("/")
        self.default_max_tokens = default_max_tokens
        self.extra_body = dict(extra_body or {})
        self._url = f"{self.base_url}/v1/messages"
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            "anthropic-version": anthropic_version,
        }
        if extra_headers:
            headers.update(extra_headers)
        headers["x-api-key"] = api_key
        self._headers = headers
        self.timeouts = StreamTimeouts(
            connect=connect_timeout,
            first_token=first_token_timeout,
            read=read_timeout,
            total=total_timeout,
        )
        self._http = SSEHTTPStream(
            provider=name,
            timeouts=self.timeouts,
            secrets=(api_key,),
            session=session,
            max_connections=max_connections,
        )

    def build_payload(self, request: ChatRequest) -> dict[str, Any]:
        """Return the JSON body this provider would send for `request`."""
        return build_messages_payload(
            request,
            model=self.model,
            default_max_tokens=self.default_max_tokens,
            extra=self.extra_body,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Stream the reply to `request`; the last chunk has finish reason and usage."""
        body = json_dumps(self.build_payload(request))
        state = AnthropicStreamState(provider=self.name)
        events = self._http.events(
            self._url,
            body=body,
            headers=self._headers,
            is_terminal=_is_message_stop,
            # message_start arrives before any generation: wait for real text.
            is_first_token=_is_content_event,
        )
        async for data in events:
            try:
                event = json_loads(data)
            except ValueError as exc:
                raise ProviderBadResponse(f"{self.name}: malformed stream event") from exc
            try:
                chunk = state.handle(event)
            except LLMError as exc:
                self._http.scrub(exc)
                raise
            if chunk is not None:
                yield chunk
            if state.stopped:
                return
        if state.stop_reason is None:
            raise ProviderBadResponse(f"{self.name}: stream ended before message_stop")

    async def aclose(self) -> None:
        """Close the HTTP connection pool (unless it was supplied by the caller)."""
        await self._http.aclose()
