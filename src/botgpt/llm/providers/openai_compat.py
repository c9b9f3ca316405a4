"""OpenAI-compatible chat completions over HTTP with server-sent events.

One implementation serves OpenAI, Groq, Ollama, vLLM and the llama.cpp server.
The module is split the way litellm splits its providers: pure translation
functions (`build_chat_payload`, `parse_chat_chunk`) that never touch the
network, and the provider, which sends requests through `SSEHTTPStream` from
`botgpt.llm.providers.sse`, the shared HTTP boundary (also used by the
Anthropic provider) where aiohttp exceptions become `botgpt.llm.errors` types.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import aiohttp

from botgpt.llm.base import ChatChunk, ChatRequest, LLMProvider, Usage
from botgpt.llm.errors import (
    LLMError,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderRequestError,
    ProviderUnavailable,
)
from botgpt.llm.providers.sse import (
    MAX_ERROR_TEXT,
    SSEHTTPStream,
    StreamTimeouts,
    error_for_status,
    json_dumps,
    json_loads,
)

__all__ = [
    "OpenAICompatProvider",
    "build_chat_payload",
    "parse_chat_chunk",
]


def build_chat_payload(
    request: ChatRequest,
    *,
    model: str,
    default_max_tokens: int | None = None,
    include_usage: bool = True,
    max_tokens_param: str = "max_tokens",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Translate a `ChatRequest` into an OpenAI `/chat/completions` streaming body."""
    payload: dict[str, Any] = {
        "model": request.model or model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "stream": True,
    }
    if include_usage:
        payload["stream_options"] = {"include_usage": True}
    max_tokens = request.max_tokens if request.max_tokens is not None else default_max_tokens
    if max_tokens is not None:
        payload[max_tokens_param] = max_tokens
    if request.temperature is not None:
        payload["temperature"] = request.temperature
    if extra:
        for key, value in extra.items():
            payload.setdefault(key, value)
    return payload


def _usage_from(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    prompt = data.get("prompt_tokens")
    completion = data.get("completion_tokens")
    if not isinstance(prompt, int) and not isinstance(completion, int):
        return None
    return Usage(
        prompt_tokens=prompt if isinstance(prompt, int) else 0,
        completion_tokens=completion if isinstance(completion, int) else 0,
    )


def stream_error_from_chunk(error: Any, *, provider: str) -> LLMError:
    """Map an `{"error": ...}` object sent inside a stream to a typed error."""
    if not isinstance(error, dict):
        return ProviderUnavailable(f"{provider}: stream error: {str(error)[:MAX_ERROR_TEXT]}")
    message = error.get("message")
    text = f"{provider}: stream error: {str(message or error)[:MAX_ERROR_TEXT]}"
    code = error.get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if isinstance(code, int) and 400 <= code <= 599:
        return error_for_status(code, text)
    kind = str(error.get("type") or code or "")
    if "rate_limit" in kind:
        return ProviderRateLimited(text)
    if "auth" in kind or "permission" in kind:
        return ProviderAuthError(text)
    if "invalid_request" in kind or "context" in kind or "not_found" in kind:
        return ProviderRequestError(text)
    # A failure reported mid-stream is the backend's fault: worth another try.
    return ProviderUnavailable(text)


def parse_chat_chunk(data: Any, *, provider: str = "openai") -> ChatChunk | None:
    """Translate one decoded `chat.completion.chunk` into a `ChatChunk` (None if empty)."""
    if not isinstance(data, dict):
        raise ProviderBadResponse(f"{provider}: stream chunk is not a JSON object")
    if "error" in data:
        raise stream_error_from_chunk(data["error"], provider=provider)
    delta_text = ""
    finish: str | None = None
    choices = data.get("choices")
    if choices:
        if not isinstance(choices, list) or not isinstance(choices[0], dict):
            raise ProviderBadResponse(f"{provider}: stream chunk has malformed choices")
        choice = choices[0]
        delta = choice.get("delta")
        if isinstance(delta, dict):
            content = delta.get("content")
            if isinstance(content, str):
                delta_text = content
        finish_raw = choice.get("finish_reason")
        if isinstance(finish_raw, str) and finish_raw:
            finish = finish_raw
    usage = _usage_from(data.get("usage"))
    if usage is None:
        # Groq has reported usage under `x_groq` instead of the top level.
        x_groq = data.get("x_groq")
        if isinstance(x_groq, dict):
            usage = _usage_from(x_groq.get("usage"))
    if not delta_text and finish is None and usage is None:
        return None
    return ChatChunk(delta=delta_text, usage=usage, finish_reason=finish)


# --------------------------------------------------------------------------
# The provider.
# --------------------------------------------------------------------------

_DONE: Final = b"[DONE]"


class OpenAICompatProvider(LLMProvider):
    """A chat model behind an OpenAI-compatible `/chat/completions` endpoint.

    Works with OpenAI, Groq, Ollama (`http://host:11434/v1`), vLLM and the
    llama.cpp server: requests stream (`stream: true`) and ask for usage in the
    final chunk (`stream_options.include_usage`; turn it off with
    `include_usage=False` for servers that reject the field). One pooled
    `aiohttp.ClientSession` is reused across calls; pass `session` to share a
    pool (it is then not closed by `aclose`). Timeouts are separate for
    connecting, the first token, silences between tokens and the whole call.
    A stream must end with `[DONE]` or a `finish_reason`; otherwise
    `ProviderBadResponse` is raised.
    """

    supports_streaming = True
    supports_system_prompt = True
    supports_usage = True

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        *,
        connect_timeout: float = 10.0,
        first_token_timeout: float = 60.0,
        read_timeout: float = 30.0,
        total_timeout: float | None = 600.0,
        context_window: int = 8192,
        default_max_tokens: int | None = None,
        include_usage: bool = True,
        max_tokens_param: str = "max_tokens",
        extra_body: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        name: str = "openai",
        session: aiohttp.ClientSession | None = None,
        max_connections: int = 1000,
    ) -> None:
        self.name = name
        self.model = model
        self.context_window = context_window
        self.base_url = base_url.rstrip("/")
        self.default_max_tokens = default_max_tokens
        self.include_usage = include_usage
        self.max_tokens_param = max_tokens_param
        self.extra_body = dict(extra_body or {})
        self._url = f"{self.base_url}/chat/completions"
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream",
        }
        if extra_headers:
            headers.update(extra_headers)
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
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
            secrets=(api_key,) if api_key else (),
            session=session,
            max_connections=max_connections,
        )

    def build_payload(self, request: ChatRequest) -> dict[str, Any]:
        """Return the JSON body this provider would send for `request`."""
        return build_chat_payload(
            request,
            model=self.model,
            default_max_tokens=self.default_max_tokens,
            include_usage=self.include_usage,
            max_tokens_param=self.max_tokens_param,
            extra=self.extra_body,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Stream the reply to `request` as `ChatChunk`s; usage arrives last."""
        body = json_dumps(self.build_payload(request))
        finished = False
        events = self._http.events(
            self._url, body=body, headers=self._headers, is_terminal=_DONE.__eq__
        )
        async for data in events:
            if data == _DONE:
                return
            try:
                decoded = json_loads(data)
            except ValueError as exc:
                raise ProviderBadResponse(f"{self.name}: malformed stream chunk") from exc
            try:
                chunk = parse_chat_chunk(decoded, provider=self.name)
            except LLMError as exc:
                self._http.scrub(exc)
                raise
            if chunk is None:
                continue
            if chunk.finish_reason is not None:
                finished = True
            yield chunk
        if not finished:
            raise ProviderBadResponse(f"{self.name}: stream ended before [DONE] or a finish reason")

    async def aclose(self) -> None:
        """Close the HTTP connection pool (unless it was supplied by the caller)."""
        await self._http.aclose()
