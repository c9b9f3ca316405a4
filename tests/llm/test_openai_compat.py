"""OpenAICompatProvider against a real local HTTP server (tests/fakes/openai_server.py)."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import cast

import pytest

from botgpt.llm.base import ChatChunk, ChatMessage, ChatRequest, Usage
from botgpt.llm.errors import (
    LLMError,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderRequestError,
    ProviderTimeout,
    ProviderUnavailable,
)
from botgpt.llm.providers.openai_compat import (
    OpenAICompatProvider,
    build_chat_payload,
    parse_chat_chunk,
)
from botgpt.llm.providers.sse import SSEDecoder, parse_retry_after
from tests.fakes.openai_server import (
    FakeOpenAIServer,
    Reply,
    closed_port,
    openai_chunk,
    openai_stream,
)

API_KEY = "sk-test-SECRET-0123456789abcdef"
REQUEST = ChatRequest(
    messages=[ChatMessage("system", "Be brief."), ChatMessage("user", "Say hello")],
    max_tokens=32,
    temperature=0.2,
)


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer() as srv:
        yield srv


def make_provider(
    base_url: str,
    *,
    first_token_timeout: float = 2.0,
    read_timeout: float = 2.0,
    total_timeout: float = 10.0,
) -> OpenAICompatProvider:
    return OpenAICompatProvider(
        base_url,
        API_KEY,
        "gpt-test",
        context_window=16384,
        connect_timeout=2.0,
        first_token_timeout=first_token_timeout,
        read_timeout=read_timeout,
        total_timeout=total_timeout,
    )


@pytest.fixture
async def provider(server: FakeOpenAIServer) -> AsyncIterator[OpenAICompatProvider]:
    p = make_provider(server.base_url)
    yield p
    await p.aclose()


async def collect(provider: OpenAICompatProvider, got: list[ChatChunk]) -> None:
    async for chunk in provider.stream(REQUEST):
        got.append(chunk)


def assert_no_key(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), " ".join(map(str, exc.args))):
        assert API_KEY not in text
    if isinstance(exc, LLMError):
        assert API_KEY not in exc.message


async def test_streams_text_finish_and_usage(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.replies.append(Reply.sse(openai_stream(["Hel", "lo", "!"], usage=(12, 3))))
    chunks = [c async for c in provider.stream(REQUEST)]
    assert "".join(c.delta for c in chunks) == "Hello!"
    assert chunks[-1].usage == Usage(prompt_tokens=12, completion_tokens=3)
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]

    sent = server.requests[0]
    assert sent.method == "POST"
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    body = sent.json()
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["model"] == "gpt-test"
    assert body["max_tokens"] == 32
    assert body["temperature"] == 0.2
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"},
    ]


async def test_complete_collects_and_reuses_the_connection(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    first = await provider.complete(REQUEST)
    second = await provider.complete(REQUEST)
    assert first.text == second.text == "Hello world"
    assert first.usage == Usage(7, 3)
    assert first.finish_reason == "stop"
    assert len(server.requests) == 2
    assert server.connections == 1  # keep-alive: one TCP connection for both calls


async def test_rate_limited_with_retry_after_seconds(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.replies.append(
        Reply.json(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "7"})
    )
    with pytest.raises(ProviderRateLimited) as info:
        await provider.complete(REQUEST)
    assert info.value.retry_after == 7.0
    assert "slow down" in str(info.value)
    assert info.value.retryable


async def test_rate_limited_with_retry_after_http_date(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    server.replies.append(Reply.json(429, {"error": "busy"}, headers={"Retry-After": when}))
    with pytest.raises(ProviderRateLimited) as info:
        await provider.complete(REQUEST)
    assert info.value.retry_after is not None
    assert 25 <= info.value.retry_after <= 31


async def test_server_error_is_unavailable(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.replies.append(Reply.json(500, {"error": {"message": "boom"}}))
    with pytest.raises(ProviderUnavailable) as info:
        await provider.complete(REQUEST)
    assert "500" in str(info.value)
    assert info.value.retry_after is None

    server.replies.append(Reply.json(503, {"error": "down"}, headers={"Retry-After": "2"}))
    with pytest.raises(ProviderUnavailable) as info:
        await provider.complete(REQUEST)
    assert info.value.retry_after == 2.0


async def test_timeout_before_first_byte(server: FakeOpenAIServer) -> None:
    provider = make_provider(server.base_url, first_token_timeout=0.3)
    server.replies.append(Reply.hang())
    started = time.monotonic()
    try:
        with pytest.raises(ProviderTimeout):
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert time.monotonic() - started < 2.0


async def test_timeout_between_chunks_keeps_what_arrived(server: FakeOpenAIServer) -> None:
    provider = make_provider(server.base_url, read_timeout=0.3)
    server.replies.append(Reply.sse([openai_chunk("partial"), 2.0, openai_chunk(" more")]))
    got: list[ChatChunk] = []
    try:
        with pytest.raises(ProviderTimeout):
            await collect(provider, got)
    finally:
        await provider.aclose()
    assert [c.delta for c in got] == ["partial"]


async def test_total_timeout(server: FakeOpenAIServer) -> None:
    provider = make_provider(server.base_url, read_timeout=5.0, total_timeout=0.5)
    steps: list[bytes | float] = [openai_chunk("tick"), 0.2] * 10
    server.replies.append(Reply.sse(steps))
    try:
        with pytest.raises(ProviderTimeout):
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()


async def test_connection_refused_is_unavailable() -> None:
    provider = make_provider(f"http://127.0.0.1:{closed_port()}/v1")
    try:
        with pytest.raises(ProviderUnavailable) as info:
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert_no_key(info.value)


async def test_connection_dropped_mid_stream(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.replies.append(Reply.sse([openai_chunk("one"), openai_chunk(" two")], ending="drop"))
    got: list[ChatChunk] = []
    with pytest.raises(ProviderUnavailable) as info:
        await collect(provider, got)
    assert [c.delta for c in got] == ["one", " two"]
    assert info.value.__cause__ is not None  # raised `from` the transport error


async def test_connection_closed_without_answer(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.replies.append(Reply.close())
    with pytest.raises(ProviderUnavailable):
        await provider.complete(REQUEST)


async def test_malformed_chunk_is_bad_response(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.replies.append(Reply.sse([openai_chunk("ok"), b"data: {not json\n\n"]))
    got: list[ChatChunk] = []
    with pytest.raises(ProviderBadResponse):
        await collect(provider, got)
    assert [c.delta for c in got] == ["ok"]


async def test_stream_ending_without_done_or_finish_is_bad_response(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.replies.append(Reply.sse([openai_chunk("cut"), openai_chunk(" short")]))
    with pytest.raises(ProviderBadResponse):
        await provider.complete(REQUEST)


async def test_finish_without_done_is_accepted(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.replies.append(Reply.sse(openai_stream(["fine"], done=False)))
    result = await provider.complete(REQUEST)
    assert result.text == "fine"
    assert result.finish_reason == "stop"


async def test_json_body_instead_of_stream_is_bad_response(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.replies.append(Reply.json(200, {"choices": []}))
    with pytest.raises(ProviderBadResponse):
        await provider.complete(REQUEST)


async def test_error_event_inside_stream(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.replies.append(
        Reply.sse(
            [openai_chunk("a"), b'data: {"error": {"message": "overloaded", "code": 503}}\n\n']
        )
    )
    with pytest.raises(ProviderUnavailable):
        await provider.complete(REQUEST)


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_error_never_leaks_the_key(
    server: FakeOpenAIServer, provider: OpenAICompatProvider, status: int
) -> None:
    # Real providers echo (part of) the key back; the message must not carry it.
    server.replies.append(
        Reply.json(
            status, {"error": {"message": f"Incorrect API key provided: {API_KEY}", "code": 1}}
        )
    )
    with pytest.raises(ProviderAuthError) as info:
        await provider.complete(REQUEST)
    assert_no_key(info.value)
    assert "[redacted]" in str(info.value)
    assert not info.value.retryable


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_other_client_errors_are_request_errors(
    server: FakeOpenAIServer, provider: OpenAICompatProvider, status: int
) -> None:
    server.replies.append(Reply.json(status, {"error": {"message": "model `nope` not found"}}))
    with pytest.raises(ProviderRequestError) as info:
        await provider.complete(REQUEST)
    assert "nope" in str(info.value)
    assert_no_key(info.value)


async def test_no_key_no_authorization_header(server: FakeOpenAIServer) -> None:
    provider = OpenAICompatProvider(server.base_url, None, "llama3")  # e.g. Ollama
    try:
        await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert "authorization" not in server.requests[0].headers


async def test_early_stop_by_consumer_releases_connection(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.replies.append(Reply.sse(openai_stream(["a", "b", "c"])))
    stream = cast(AsyncGenerator[ChatChunk, None], provider.stream(REQUEST))
    async for chunk in stream:
        if chunk.delta:
            break
    await stream.aclose()
    assert (await provider.complete(REQUEST)).text == "Hello world"


# ---- pure translation helpers -------------------------------------------------


def test_sse_decoder_handles_split_crlf_comments_and_multiline() -> None:
    raw = (
        b': keep-alive\r\n\r\nevent: x\r\ndata: {"a":\r\ndata: 1}\r\n\r\ndata: [DONE]\n\ndata: tail'
    )
    for size in (1, 2, 3, 7, len(raw)):
        decoder = SSEDecoder()
        out: list[bytes] = []
        for i in range(0, len(raw), size):
            out += decoder.feed(raw[i : i + size])
        out += decoder.flush()
        assert out == [b'{"a":\n1}', b"[DONE]", b"tail"], size


def test_parse_chat_chunk_shapes() -> None:
    assert parse_chat_chunk({"choices": [{"delta": {"role": "assistant"}}]}) is None
    assert parse_chat_chunk({"choices": [{"delta": {"content": "x"}}]}) == ChatChunk("x")
    assert parse_chat_chunk(
        {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
    ) == ChatChunk(usage=Usage(1, 2))
    assert parse_chat_chunk(
        {
            "choices": [{"delta": {}, "finish_reason": "length"}],
            "x_groq": {"usage": {"prompt_tokens": 3, "completion_tokens": 4}},
        }
    ) == ChatChunk(finish_reason="length", usage=Usage(3, 4))
    with pytest.raises(ProviderBadResponse):
        parse_chat_chunk([1, 2])
    with pytest.raises(ProviderRateLimited):
        parse_chat_chunk({"error": {"type": "rate_limit_exceeded", "message": "x"}})


def test_build_payload_defaults() -> None:
    payload = build_chat_payload(
        ChatRequest(messages=[ChatMessage("user", "hi")]),
        model="m",
        default_max_tokens=100,
        include_usage=False,
        max_tokens_param="max_completion_tokens",
    )
    assert payload == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "max_completion_tokens": 100,
    }


def test_parse_retry_after_variants() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "garbage"}) is None
    assert parse_retry_after({}) is None
    past = email.utils.formatdate(time.time() - 100, usegmt=True)
    assert parse_retry_after({"retry-after": past}) == 0.0
    assert parse_retry_after({"retry-after": "-5"}) == 0.0


async def test_requests_go_through_the_proxy_from_the_environment(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake server plays the proxy: it receives the absolute URL of the provider.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    provider = make_provider("http://llm.internal.example/v1")
    try:
        reply = await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert reply.text == "Hello world"
    assert server.requests[0].path == "http://llm.internal.example/v1/chat/completions"


async def test_no_proxy_hosts_are_reached_directly(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    provider = make_provider(server.base_url)
    try:
        reply = await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert reply.text == "Hello world"
    assert server.requests[0].path == "/v1/chat/completions"
