"""OpenAI-compatible chat completions over HTTP with server-sent events.

One implementation serves OpenAI, Groq, Ollama, vLLM and the llama.cpp server.
The module is split the way litellm splits its providers: pure translation
functions (`build_chat_payload`, `parse_chat_chunk`, `error_for_status`,
`parse_retry_after`, `SSEDecoder`) that never touch the network, and
`SSEHTTPStream`, the only code that talks HTTP and the only place where httpx
exceptions are turned into `botgpt.llm.errors` types. The Anthropic provider
reuses the transport and the helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import httpx

from botgpt.llm.base import ChatChunk, ChatRequest, LLMProvider, Usage
from botgpt.llm.errors import (
    LLMError,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderRequestError,
    ProviderTimeout,
    ProviderUnavailable,
)

__all__ = [
    "OpenAICompatProvider",
    "SSEDecoder",
    "SSEHTTPStream",
    "StreamTimeouts",
    "build_chat_payload",
    "error_for_status",
    "error_message_from_body",
    "json_dumps",
    "json_loads",
    "parse_chat_chunk",
    "parse_retry_after",
    "redact",
]

_T = TypeVar("_T")


def _load_json_codec() -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]]:
    # orjson parses a typical chunk several times faster than the stdlib, which
    # matters on a 2-core box streaming many replies; it stays optional.
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson is a project dependency

        def dumps(obj: Any) -> bytes:
            return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

        return json.loads, dumps
    return orjson.loads, orjson.dumps


_loads, _dumps = _load_json_codec()


def json_loads(data: bytes) -> Any:
    """Parse JSON bytes with orjson when available, else the stdlib."""
    return _loads(data)


def json_dumps(obj: Any) -> bytes:
    """Serialise `obj` to compact UTF-8 JSON bytes."""
    return _dumps(obj)


# --------------------------------------------------------------------------
# Pure helpers: no I/O below this line until SSEHTTPStream.
# --------------------------------------------------------------------------

_REDACTED: Final = "[redacted]"
_MAX_ERROR_TEXT: Final = 300
_MAX_ERROR_BODY: Final = 64 * 1024
# How long to wait for the end of a body after its terminal event.
_DRAIN_SECONDS: Final = 1.0


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret in `text` with a marker."""
    for secret in secrets:
        # Very short "secrets" (e.g. Ollama's dummy key "x") would mangle text.
        if secret and len(secret) >= 4:
            text = text.replace(secret, _REDACTED)
    return text


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or HTTP date) or `retry-after-ms`."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            value = float(raw_ms) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:  # pragma: no cover - older Pythons returned None
            return None
        current = time.time() if now is None else now
        return max(0.0, when.timestamp() - current)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def error_message_from_body(body: bytes) -> str:
    """Pull a human message out of an error body (OpenAI or Anthropic shape, or text)."""
    text = ""
    try:
        data = json_loads(body) if body else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail") or err.get("type")
            text = msg if isinstance(msg, str) else ""
        elif isinstance(err, str):
            text = err
    if not text:
        text = body.decode("utf-8", "replace").strip()
    text = " ".join(text.split())
    if len(text) > _MAX_ERROR_TEXT:
        text = text[:_MAX_ERROR_TEXT] + "..."
    return text


def error_for_status(status: int, message: str, *, retry_after: float | None = None) -> LLMError:
    """Map an HTTP error status to the typed provider error."""
    if status == 429:
        return ProviderRateLimited(message, retry_after=retry_after)
    if status in (401, 403):
        return ProviderAuthError(message)
    if status == 408:
        return ProviderTimeout(message, retry_after=retry_after)
    if status >= 500:
        # 529 is Anthropic's "overloaded"; every 5xx means "try again later".
        return ProviderUnavailable(message, retry_after=retry_after)
    return ProviderRequestError(message)


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
        return ProviderUnavailable(f"{provider}: stream error: {str(error)[:_MAX_ERROR_TEXT]}")
    message = error.get("message")
    text = f"{provider}: stream error: {str(message or error)[:_MAX_ERROR_TEXT]}"
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


class SSEDecoder:
    """Incremental decoder of a `text/event-stream` body into `data` payloads.

    Feed it the raw byte chunks as they arrive from the socket; it returns the
    complete events' data fields (several `data:` lines of one event are joined
    with newlines, per the SSE spec). Comments (`: ping`), `event:`, `id:` and
    `retry:` fields are skipped because both APIs we speak repeat the event name
    inside the JSON. Works on bytes so orjson can parse without a decode step.
    """

    __slots__ = ("_buffer", "_data")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        """Consume `chunk`; return the data of every event it completed."""
        buffer = self._buffer + chunk if self._buffer else chunk
        out: list[bytes] = []
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = buffer[start:end]
            start = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            self._line(line, out)
        self._buffer = buffer[start:]
        return out

    def flush(self) -> list[bytes]:
        """Return an event left unterminated at the end of the body, if any."""
        out: list[bytes] = []
        if self._buffer:
            line, self._buffer = self._buffer.rstrip(b"\r"), b""
            self._line(line, out)
        self._line(b"", out)
        return out

    def _line(self, line: bytes, out: list[bytes]) -> None:
        if not line:
            if self._data:
                out.append(self._data[0] if len(self._data) == 1 else b"\n".join(self._data))
                self._data = []
            return
        if line.startswith(b"data:"):
            value = line[5:]
            if value.startswith(b" "):
                value = value[1:]
            self._data.append(value)
        # Other fields and ":" comments carry nothing we need.


@dataclass(frozen=True, slots=True)
class StreamTimeouts:
    """Deadlines of one streamed call, in seconds.

    `connect` bounds TCP/TLS setup; `first_token` bounds the wait from sending
    the request to the first event (prompt processing can be slow);
    `read` bounds each silence between events once streaming; `total` bounds
    the whole call (None: unbounded).
    """

    connect: float = 10.0
    first_token: float = 60.0
    read: float = 30.0
    total: float | None = 600.0


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


class SSEHTTPStream:
    """The HTTP boundary shared by the HTTP providers: POST, then yield SSE data.

    Holds one `httpx.AsyncClient` (keep-alive connection pool) for the life of
    the provider. `events()` sends a request and yields each event's data bytes;
    every transport failure, timeout and non-2xx answer leaves it as a typed
    `LLMError` (with `raise ... from exc`), and every message is scrubbed of
    the configured secrets. Deadlines are enforced per awaited network read
    with `asyncio.timeout_at`, never across a `yield`, so a slow consumer is
    never charged for, nor cancelled by, the provider's timeout.
    """

    def __init__(
        self,
        *,
        provider: str,
        timeouts: StreamTimeouts,
        secrets: Sequence[str] = (),
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 100,
    ) -> None:
        self.provider = provider
        self.timeouts = timeouts
        self._secrets = tuple(s for s in secrets if s)
        self._owns_client = client is None
        if client is None:
            # httpx's own timeouts back up the asyncio deadlines below; the read
            # one is the larger of the two phases so it never fires first.
            client = httpx.AsyncClient(
                transport=transport,
                timeout=httpx.Timeout(
                    connect=timeouts.connect,
                    read=max(timeouts.first_token, timeouts.read),
                    write=max(timeouts.connect, timeouts.read),
                    pool=timeouts.connect,
                ),
                limits=httpx.Limits(
                    max_connections=max_connections,
                    max_keepalive_connections=min(20, max_connections),
                    keepalive_expiry=30.0,
                ),
            )
        self.client = client

    async def aclose(self) -> None:
        """Close the connection pool if this object created it."""
        if self._owns_client:
            await self.client.aclose()

    def scrub(self, error: LLMError) -> LLMError:
        """Remove the configured secrets from `error`'s message and return it."""
        error.message = redact(error.message, self._secrets)
        error.args = (error.message,)
        return error

    async def _guard(self, awaitable: Awaitable[_T], deadline: float | None, what: str) -> _T:
        """Await one network step under `deadline`, mapping failures to typed errors."""
        name = self.provider
        try:
            async with asyncio.timeout_at(deadline):
                return await awaitable
        except TimeoutError as exc:
            raise self.scrub(ProviderTimeout(f"{name}: timed out {what}")) from exc
        except httpx.TimeoutException as exc:
            raise self.scrub(
                ProviderTimeout(f"{name}: timed out {what} ({type(exc).__name__})")
            ) from exc
        except (httpx.ConnectError, httpx.ProxyError) as exc:
            raise self.scrub(ProviderUnavailable(f"{name}: cannot connect: {exc}")) from exc
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise self.scrub(
                ProviderUnavailable(f"{name}: connection lost {what}: {type(exc).__name__}")
            ) from exc
        except httpx.UnsupportedProtocol as exc:
            raise self.scrub(ProviderRequestError(f"{name}: bad base URL: {exc}")) from exc
        except httpx.TransportError as exc:
            raise self.scrub(
                ProviderUnavailable(f"{name}: transport error {what}: {type(exc).__name__}")
            ) from exc
        except httpx.DecodingError as exc:
            raise self.scrub(
                ProviderBadResponse(f"{name}: undecodable body {what}: {exc}")
            ) from exc

    async def _error_from_response(
        self, response: httpx.Response, deadline: float | None
    ) -> LLMError:
        """Read a bounded slice of an error body and build the typed error."""
        body = bytearray()

        async def read() -> None:
            async for part in response.aiter_bytes():
                body.extend(part)
                if len(body) >= _MAX_ERROR_BODY:
                    break

        # If the body cannot be read, the status code alone classifies the failure.
        with contextlib.suppress(LLMError):
            await self._guard(read(), deadline, "reading the error body")
        detail = error_message_from_body(bytes(body))
        message = f"{self.provider}: HTTP {response.status_code}"
        if detail:
            message += f": {detail}"
        retry_after = parse_retry_after(response.headers)
        return self.scrub(error_for_status(response.status_code, message, retry_after=retry_after))

    async def _drain(self, chunks: AsyncIterator[bytes]) -> None:
        """Read what is left of a finished body so the connection can be reused."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _DRAIN_SECONDS
        left = _MAX_ERROR_BODY
        # httpx returns a connection to the pool only if the body was read to its
        # end; after the terminal event only the chunked-encoding trailer remains.
        with contextlib.suppress(LLMError):
            while left > 0:
                raw = await self._guard(anext(chunks, None), deadline, "draining")
                if raw is None:
                    return
                left -= len(raw)

    async def events(
        self,
        url: str,
        *,
        body: bytes,
        headers: Mapping[str, str],
        is_terminal: Callable[[bytes], bool] | None = None,
        is_first_token: Callable[[bytes], bool] | None = None,
    ) -> AsyncIterator[bytes]:
        """POST `body` to `url` and yield the data of each server-sent event.

        The `first_token` deadline holds until an event for which
        `is_first_token` is true (default: any event) has arrived; after that
        each silence is bounded by `read`. The first event for which
        `is_terminal` is true is yielded last, after the rest of the body has
        been drained (briefly) so the connection can be reused.
        """
        loop = asyncio.get_running_loop()
        t = self.timeouts
        start = loop.time()
        total_deadline = None if t.total is None else start + t.total
        first_deadline = _earliest(start + t.first_token, total_deadline)
        request = self.client.build_request("POST", url, content=body, headers=headers)
        response = await self._guard(
            self.client.send(request, stream=True), first_deadline, "waiting for the response"
        )
        try:
            if not response.is_success:
                raise await self._error_from_response(response, first_deadline)
            content_type = response.headers.get("content-type", "")
            if "json" in content_type and "stream" not in content_type:
                raise self.scrub(
                    ProviderBadResponse(
                        f"{self.provider}: expected an event stream, got {content_type}"
                    )
                )
            decoder = SSEDecoder()
            chunks = response.aiter_bytes()
            seen_event = False
            while True:
                if seen_event:
                    deadline = _earliest(loop.time() + t.read, total_deadline)
                    what = "between stream events"
                else:
                    deadline = first_deadline
                    what = "waiting for the first token"
                raw = await self._guard(anext(chunks, None), deadline, what)
                if raw is None:
                    for data in decoder.flush():
                        yield data
                    return
                for data in decoder.feed(raw):
                    if not seen_event:
                        seen_event = is_first_token is None or is_first_token(data)
                    if is_terminal is not None and is_terminal(data):
                        await self._drain(chunks)
                        yield data
                        return
                    yield data
        finally:
            await response.aclose()


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
    `httpx.AsyncClient` is reused across calls; pass `client` to share a pool
    (it is then not closed by `aclose`) or `transport` to swap the network
    layer. Timeouts are separate for connecting, the first token, silences
    between tokens and the whole call. A stream must end with `[DONE]` or a
    `finish_reason`; otherwise `ProviderBadResponse` is raised.
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
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
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
            client=client,
            transport=transport,
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
