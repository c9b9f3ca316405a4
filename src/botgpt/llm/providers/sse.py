"""Shared HTTP and server-sent-events machinery of the HTTP chat providers.

Everything here is provider-neutral and used by both `openai_compat` and
`anthropic`: the JSON codec (orjson when available), the pure helpers that
never touch the network (`redact`, `parse_retry_after`,
`error_message_from_body`, `error_for_status`, the incremental `SSEDecoder`
and the `StreamTimeouts` deadlines), and `SSEHTTPStream`, the only code that
talks HTTP and the only place where aiohttp exceptions are turned into
`botgpt.llm.errors` types. Request and chunk translation for a given API lives
in that provider's own module.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import math
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import aiohttp

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
    "MAX_ERROR_TEXT",
    "SSEDecoder",
    "SSEHTTPStream",
    "StreamTimeouts",
    "error_for_status",
    "error_message_from_body",
    "json_dumps",
    "json_loads",
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
# Longest provider error text quoted in an `LLMError` message.
MAX_ERROR_TEXT: Final = 300
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
    if len(text) > MAX_ERROR_TEXT:
        text = text[:MAX_ERROR_TEXT] + "..."
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

    Holds one `aiohttp.ClientSession` (keep-alive connection pool) for the life of
    the provider, created on first use inside the running event loop. aiohttp's
    C parser reaches the first streamed byte about 0.3 ms sooner than httpx on
    this path (bench/stream_overhead.py), which is most of what a proxy adds to
    the time to first token. `events()` sends a request and yields each event's
    data bytes; every transport failure, timeout and non-2xx answer leaves it as
    a typed `LLMError` (with `raise ... from exc`), and every message is scrubbed
    of the configured secrets. Deadlines are enforced per awaited network read
    with `asyncio.timeout_at`, never across a `yield`, so a slow consumer is
    never charged for, nor cancelled by, the provider's timeout.
    """

    def __init__(
        self,
        *,
        provider: str,
        timeouts: StreamTimeouts,
        secrets: Sequence[str] = (),
        session: aiohttp.ClientSession | None = None,
        max_connections: int = 100,
    ) -> None:
        self.provider = provider
        self.timeouts = timeouts
        self._secrets = tuple(s for s in secrets if s)
        self._owns_session = session is None
        self._session = session
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._max_connections = max_connections
        self._proxies: dict[str, str | None] = {}

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if not self._owns_session:
            assert self._session is not None
            return self._session
        if self._session is None or self._session.closed or self._session_loop is not loop:
            # A session belongs to the loop it was made in (tests run several loops).
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=30.0),
                # The asyncio deadlines in `events` are the real timeouts; this one
                # only bounds connection setup inside aiohttp.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeouts.connect),
                headers={"user-agent": "botgpt"},
            )
            self._session_loop = loop
        return self._session

    def proxy_for(self, url: str) -> str | None:
        """The proxy for `url` from HTTP(S)_PROXY / NO_PROXY, looked up once per URL.

        aiohttp's `trust_env` repeats the lookup on every request (0.5 ms here).
        """
        if url not in self._proxies:
            parts = urllib.parse.urlsplit(url)
            proxy = urllib.request.getproxies().get(parts.scheme)
            if proxy and urllib.request.proxy_bypass(parts.hostname or ""):
                proxy = None
            self._proxies[url] = proxy
        return self._proxies[url]

    async def aclose(self) -> None:
        """Close the connection pool if this object created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

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
        except TimeoutError as exc:  # also aiohttp's connect and socket timeouts
            raise self.scrub(ProviderTimeout(f"{name}: timed out {what}")) from exc
        except aiohttp.ClientConnectorError as exc:
            raise self.scrub(ProviderUnavailable(f"{name}: cannot connect: {exc}")) from exc
        except aiohttp.InvalidURL as exc:
            raise self.scrub(ProviderRequestError(f"{name}: bad base URL: {exc}")) from exc
        except (
            aiohttp.ServerDisconnectedError,
            aiohttp.ClientPayloadError,
            aiohttp.ClientOSError,
        ) as exc:
            raise self.scrub(
                ProviderUnavailable(f"{name}: connection lost {what}: {type(exc).__name__}")
            ) from exc
        except aiohttp.ClientResponseError as exc:
            raise self.scrub(
                ProviderBadResponse(f"{name}: invalid HTTP response {what}: {exc.message}")
            ) from exc
        except aiohttp.ClientError as exc:
            raise self.scrub(
                ProviderUnavailable(f"{name}: transport error {what}: {type(exc).__name__}")
            ) from exc

    async def _error_from_response(
        self, response: aiohttp.ClientResponse, deadline: float | None
    ) -> LLMError:
        """Read a bounded slice of an error body and build the typed error."""
        body = bytearray()

        async def read() -> None:
            while len(body) < _MAX_ERROR_BODY:
                part = await response.content.readany()
                if not part:
                    break
                body.extend(part)

        # If the body cannot be read, the status code alone classifies the failure.
        with contextlib.suppress(LLMError):
            await self._guard(read(), deadline, "reading the error body")
        detail = error_message_from_body(bytes(body))
        message = f"{self.provider}: HTTP {response.status}"
        if detail:
            message += f": {detail}"
        retry_after = parse_retry_after(response.headers)
        return self.scrub(error_for_status(response.status, message, retry_after=retry_after))

    async def _drain(self, response: aiohttp.ClientResponse) -> None:
        """Read what is left of a finished body so the connection can be reused."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _DRAIN_SECONDS
        left = _MAX_ERROR_BODY
        # A connection goes back to the pool only if the body was read to its end;
        # after the terminal event only the chunked-encoding trailer remains.
        with contextlib.suppress(LLMError):
            while left > 0:
                raw = await self._guard(response.content.readany(), deadline, "draining")
                if not raw:
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
        response = await self._guard(
            self._client().post(url, data=body, headers=headers, proxy=self.proxy_for(url)),
            first_deadline,
            "waiting for the response",
        )
        try:
            if not 200 <= response.status < 300:
                raise await self._error_from_response(response, first_deadline)
            content_type = response.headers.get("content-type", "")
            if "json" in content_type and "stream" not in content_type:
                raise self.scrub(
                    ProviderBadResponse(
                        f"{self.provider}: expected an event stream, got {content_type}"
                    )
                )
            decoder = SSEDecoder()
            seen_event = False
            while True:
                if seen_event:
                    deadline = _earliest(loop.time() + t.read, total_deadline)
                    what = "between stream events"
                else:
                    deadline = first_deadline
                    what = "waiting for the first token"
                raw = await self._guard(response.content.readany(), deadline, what)
                if not raw:
                    for data in decoder.flush():
                        yield data
                    return
                for data in decoder.feed(raw):
                    if not seen_event:
                        seen_event = is_first_token is None or is_first_token(data)
                    if is_terminal is not None and is_terminal(data):
                        await self._drain(response)
                        yield data
                        return
                    yield data
        finally:
            response.release()
