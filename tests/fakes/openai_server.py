"""A real, scriptable HTTP server on 127.0.0.1 that speaks like an OpenAI-compatible API.

`ScriptedHTTPServer` is a tiny HTTP/1.1 server on raw asyncio sockets (so a
test controls every byte: delays before the headers, chunked SSE bodies,
connections dropped mid-stream, garbage). Each incoming request pops the next
`Reply` from `server.replies`; when the queue is empty `default_reply` answers.
Every request is recorded in `server.requests`. `FakeOpenAIServer` adds the
OpenAI chunk helpers; `tests/fakes/anthropic_server.py` builds on the same base.

Usage:

    async with FakeOpenAIServer() as server:
        server.replies.append(Reply.sse(openai_stream(["Hel", "lo"], usage=(5, 2))))
        provider = OpenAICompatProvider(server.base_url, "sk-test", "gpt-x")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

__all__ = [
    "FakeOpenAIServer",
    "RecordedRequest",
    "Reply",
    "ScriptedHTTPServer",
    "closed_port",
    "openai_chunk",
    "openai_stream",
    "sse",
]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    529: "Overloaded",
}

# A script item: bytes are written as one HTTP chunk, a float sleeps that long.
Step = bytes | float
Ending = Literal["end", "drop", "hang"]


@dataclass
class Reply:
    """One scripted answer.

    `kind` is "stream" (chunked body written step by step), "body" (a plain
    body with Content-Length), "hang" (read the request, never answer) or
    "close" (close the connection without answering). `delay` is slept before
    the status line. A stream ends per `ending`: "end" terminates the chunked
    body properly, "drop" closes the socket mid-body, "hang" keeps it open.
    """

    kind: Literal["stream", "body", "hang", "close"] = "body"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    steps: Sequence[Step] = ()
    ending: Ending = "end"
    delay: float = 0.0

    @classmethod
    def sse(
        cls,
        steps: Sequence[Step],
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        ending: Ending = "end",
        delay: float = 0.0,
    ) -> Reply:
        """A `text/event-stream` reply written step by step."""
        return cls(
            kind="stream",
            status=status,
            headers={"content-type": "text/event-stream", **(headers or {})},
            steps=steps,
            ending=ending,
            delay=delay,
        )

    @classmethod
    def json(
        cls,
        status: int,
        payload: Any,
        *,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> Reply:
        """A JSON reply (typically an error) with the given status."""
        return cls(
            kind="body",
            status=status,
            headers={"content-type": "application/json", **(headers or {})},
            body=json.dumps(payload).encode(),
            delay=delay,
        )

    @classmethod
    def hang(cls) -> Reply:
        """Read the request and never answer (a timeout before the first byte)."""
        return cls(kind="hang")

    @classmethod
    def close(cls) -> Reply:
        """Close the connection without any answer."""
        return cls(kind="close")


@dataclass
class RecordedRequest:
    """A request the fake server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def sse(data: Any, *, event: str | None = None) -> bytes:
    """One server-sent event; `data` is JSON-encoded unless it is str/bytes."""
    if isinstance(data, bytes):
        payload = data
    elif isinstance(data, str):
        payload = data.encode()
    else:
        payload = json.dumps(data).encode()
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + payload + b"\n\n"


def closed_port() -> int:
    """A loopback port nothing listens on (connecting to it is refused)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class ScriptedHTTPServer:
    """Minimal HTTP/1.1 server with keep-alive, driven by a queue of `Reply`s.

    Start with `await server.start()` or `async with`. `base_url` is
    `http://127.0.0.1:<port>` plus `path_prefix`. Not a general HTTP server:
    it understands Content-Length request bodies, which is all httpx sends here.
    """

    path_prefix = ""

    def __init__(self, default_reply: Callable[[RecordedRequest], Reply] | None = None) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[RecordedRequest] = []
        self.default_reply = default_reply or (lambda _req: Reply.json(404, {"error": "no reply"}))
        self._server: asyncio.Server | None = None
        self._stopping = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        #: TCP connections accepted so far (keep-alive reuse shows as 1 for many requests).
        self.connections = 0

    @property
    def base_url(self) -> str:
        """Root URL clients should use."""
        return f"http://127.0.0.1:{self.port}{self.path_prefix}"

    async def start(self) -> None:
        """Listen on a random loopback port."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every open connection."""
        self._stopping.set()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def __aenter__(self) -> ScriptedHTTPServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def next_reply(self, request: RecordedRequest) -> Reply:
        """The scripted reply for `request` (queue first, then the default)."""
        return self.replies.popleft() if self.replies else self.default_reply(request)

    async def _read_request(self, reader: asyncio.StreamReader) -> RecordedRequest | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await reader.readexactly(length) if length else b""
        return RecordedRequest(method, path, headers, body)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.connections += 1
        try:
            while not self._stopping.is_set():
                request = await self._read_request(reader)
                if request is None:
                    return
                self.requests.append(request)
                reply = self.next_reply(request)
                if not await self._respond(reply, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _respond(self, reply: Reply, writer: asyncio.StreamWriter) -> bool:
        """Write `reply`; return whether the connection may serve another request."""
        if reply.kind == "close":
            return False
        if reply.kind == "hang":
            await self._stopping.wait()
            return False
        if reply.delay:
            await asyncio.sleep(reply.delay)
        reason = _REASONS.get(reply.status, "Status")
        head = [f"HTTP/1.1 {reply.status} {reason}"]
        headers = {k.lower(): v for k, v in reply.headers.items()}
        if reply.kind == "body":
            headers["content-length"] = str(len(reply.body))
        else:
            headers["transfer-encoding"] = "chunked"
            headers.setdefault("cache-control", "no-cache")
        head += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if reply.kind == "body":
            writer.write(reply.body)
            await writer.drain()
            return True
        await writer.drain()
        for step in reply.steps:
            if isinstance(step, float | int) and not isinstance(step, bool):
                await asyncio.sleep(float(step))
                continue
            assert isinstance(step, bytes)
            if step:
                writer.write(f"{len(step):x}\r\n".encode() + step + b"\r\n")
                await writer.drain()
        if reply.ending == "drop":
            # FIN without the terminating zero-length chunk: an incomplete body.
            return False
        if reply.ending == "hang":
            await self._stopping.wait()
            return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


def openai_chunk(
    content: str | None = None,
    *,
    finish_reason: str | None = None,
    usage: tuple[int, int] | None = None,
    model: str = "fake-model",
    role: str | None = None,
) -> bytes:
    """One `chat.completion.chunk` SSE event."""
    choices: list[dict[str, Any]] = []
    if content is not None or finish_reason is not None or role is not None:
        delta: dict[str, Any] = {}
        if role is not None:
            delta["role"] = role
        if content is not None:
            delta["content"] = content
        choices.append({"index": 0, "delta": delta, "finish_reason": finish_reason})
    data: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        data["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": usage[0] + usage[1],
        }
    return sse(data)


def openai_stream(
    pieces: Sequence[str],
    *,
    usage: tuple[int, int] | None = (7, 3),
    finish_reason: str = "stop",
    done: bool = True,
) -> list[Step]:
    """A complete OpenAI stream: role chunk, text pieces, finish, usage chunk, [DONE]."""
    steps: list[Step] = [openai_chunk(role="assistant", content="")]
    steps += [openai_chunk(piece) for piece in pieces]
    steps.append(openai_chunk(finish_reason=finish_reason))
    if usage is not None:
        steps.append(openai_chunk(usage=usage))
    if done:
        steps.append(b"data: [DONE]\n\n")
    return steps


class FakeOpenAIServer(ScriptedHTTPServer):
    """An OpenAI-compatible fake: `base_url` ends in `/v1`; by default replies "Hello world".

    Tests push `Reply`s built with `openai_stream`/`openai_chunk`/`Reply.json`
    onto `replies`; `requests` records what the provider sent.
    """

    path_prefix = "/v1"

    def __init__(self, default_reply: Callable[[RecordedRequest], Reply] | None = None) -> None:
        super().__init__(
            default_reply or (lambda _req: Reply.sse(openai_stream(["Hello", " world"])))
        )

    async def __aenter__(self) -> FakeOpenAIServer:
        await self.start()
        return self
