"""AnthropicProvider against a real local HTTP server (tests/fakes/anthropic_server.py)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

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
from botgpt.llm.providers.anthropic import (
    AnthropicProvider,
    AnthropicStreamState,
    build_messages_payload,
    merge_messages,
)
from tests.fakes.anthropic_server import (
    FakeAnthropicServer,
    anthropic_error_body,
    anthropic_event,
    anthropic_stream,
)
from tests.fakes.openai_server import Reply, closed_port

API_KEY = "sk-ant-SECRET-abcdef0123456789"
REQUEST = ChatRequest(
    messages=[
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Hi"),
        ChatMessage("user", "Say hello"),
    ],
    max_tokens=64,
)


@pytest.fixture
async def server() -> AsyncIterator[FakeAnthropicServer]:
    async with FakeAnthropicServer() as srv:
        yield srv


def make_provider(
    base_url: str,
    *,
    first_token_timeout: float = 2.0,
    read_timeout: float = 2.0,
    total_timeout: float = 10.0,
) -> AnthropicProvider:
    return AnthropicProvider(
        API_KEY,
        "claude-test",
        base_url,
        connect_timeout=2.0,
        first_token_timeout=first_token_timeout,
        read_timeout=read_timeout,
        total_timeout=total_timeout,
    )


@pytest.fixture
async def provider(server: FakeAnthropicServer) -> AsyncIterator[AnthropicProvider]:
    p = make_provider(server.base_url)
    yield p
    await p.aclose()


async def collect(provider: AnthropicProvider, got: list[ChatChunk]) -> None:
    async for chunk in provider.stream(REQUEST):
        got.append(chunk)


def assert_no_key(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), " ".join(map(str, exc.args))):
        assert API_KEY not in text
    if isinstance(exc, LLMError):
        assert API_KEY not in exc.message


async def test_streams_text_with_usage_and_request_shape(
    server: FakeAnthropicServer, provider: AnthropicProvider
) -> None:
    server.replies.append(
        Reply.sse(anthropic_stream(["Hel", "lo"], input_tokens=21, output_tokens=5))
    )
    chunks = [c async for c in provider.stream(REQUEST)]
    assert "".join(c.delta for c in chunks) == "Hello"
    assert chunks[-1].usage == Usage(prompt_tokens=21, completion_tokens=5)
    assert chunks[-1].finish_reason == "stop"

    sent = server.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == API_KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    body = sent.json()
    assert body == {
        "model": "claude-test",
        "max_tokens": 64,
        "stream": True,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hi\n\nSay hello"}],
    }


async def test_complete_reuses_the_connection(
    server: FakeAnthropicServer, provider: AnthropicProvider
) -> None:
    first = await provider.complete(REQUEST)
    second = await provider.complete(REQUEST)
    assert first.text == second.text == "Hello world"
    assert first.usage == Usage(11, 4)
    assert server.connections == 1


async def test_max_tokens_stop_reason_maps_to_length(
    server: FakeAnthropicServer, provider: AnthropicProvider
) -> None:
    server.replies.append(Reply.sse(anthropic_stream(["x"], stop_reason="max_tokens")))
    result = await provider.complete(REQUEST)
    assert result.finish_reason == "length"


async def test_rate_limited_with_retry_after(
    server: FakeAnthropicServer, provider: AnthropicProvider
) -> None:
    server.replies.append(
        Reply.json(
            429,
            anthropic_error_body("rate_limit_error", "Number of requests exceeded"),
            headers={"retry-after": "12"},
        )
    )
    with pytest.raises(ProviderRateLimited) as info:
        await provider.complete(REQUEST)
    assert info.value.retry_after == 12.0


@pytest.mark.parametrize("status", [500, 529])
async def test_server_errors_are_unavailable(
    server: FakeAnthropicServer, provider: AnthropicProvider, status: int
) -> None:
    server.replies.append(Reply.json(status, anthropic_error_body("overloaded_error", "busy")))
    with pytest.raises(ProviderUnavailable) as info:
        await provider.complete(REQUEST)
    assert "busy" in str(info.value)


async def test_timeout_before_first_byte(server: FakeAnthropicServer) -> None:
    provider = make_provider(server.base_url, first_token_timeout=0.3)
    server.replies.append(Reply.hang())
    started = time.monotonic()
    try:
        with pytest.raises(ProviderTimeout):
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert time.monotonic() - started < 2.0


async def test_first_token_deadline_covers_the_preamble(server: FakeAnthropicServer) -> None:
    # message_start comes at once; the model then "thinks" longer than the
    # inter-chunk timeout but within the first-token timeout: no error.
    provider = make_provider(server.base_url, first_token_timeout=3.0, read_timeout=0.2)
    steps = anthropic_stream(["late"])
    server.replies.append(Reply.sse([*steps[:3], 0.5, *steps[3:]]))
    try:
        assert (await provider.complete(REQUEST)).text == "late"
        server.replies.append(Reply.sse([*steps[:4], 0.5, *steps[4:]]))
        with pytest.raises(ProviderTimeout):  # after the first token, 0.2 s is the limit
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()


async def test_connection_refused_is_unavailable() -> None:
    provider = make_provider(f"http://127.0.0.1:{closed_port()}")
    try:
        with pytest.raises(ProviderUnavailable) as info:
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert_no_key(info.value)


async def test_connection_dropped_mid_stream(
    server: FakeAnthropicServer, provider: AnthropicProvider
) -> None:
    steps = anthropic_stream(["one", " two", " three"], stop=False)[:5]
    server.replies.append(Reply.sse(steps, ending="drop"))
    got: list[ChatChunk] = []
    with pytest.raises(ProviderUnavailable):
        await collect(provider, got)
    assert [c.delta for c in got] == ["one", " two"]


async def test_malformed_event_is_bad_response(
    server: FakeAnthropicServer, provider: AnthropicProvider
) -> None:
    steps = [*anthropic_stream(["ok"])[:4], b"event: content_block_delta\ndata: {oops\n\n"]
    server.replies.append(Reply.sse(steps))
    got: list[ChatChunk] = []
    with pytest.raises(ProviderBadResponse):
        await collect(provider, got)
    assert [c.delta for c in got] == ["ok"]


async def test_stream_without_message_stop_or_stop_reason_is_bad_response(
    server: FakeAnthropicServer, provider: AnthropicProvider
) -> None:
    server.replies.append(Reply.sse(anthropic_stream(["cut"], stop=False)[:4]))
    with pytest.raises(ProviderBadResponse):
        await provider.complete(REQUEST)


@pytest.mark.parametrize(
    ("kind", "error_type"),
    [
        ("overloaded_error", ProviderUnavailable),
        ("api_error", ProviderUnavailable),
        ("rate_limit_error", ProviderRateLimited),
        ("invalid_request_error", ProviderRequestError),
        ("authentication_error", ProviderAuthError),
    ],
)
async def test_error_events_map_to_typed_errors(
    server: FakeAnthropicServer,
    provider: AnthropicProvider,
    kind: str,
    error_type: type[LLMError],
) -> None:
    steps = anthropic_stream(["partial"], stop=False)[:4]
    steps.append(anthropic_event("error", error={"type": kind, "message": "nope"}))
    server.replies.append(Reply.sse(steps))
    got: list[ChatChunk] = []
    with pytest.raises(error_type):
        await collect(provider, got)
    assert [c.delta for c in got] == ["partial"]


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_errors_never_leak_the_key(
    server: FakeAnthropicServer, provider: AnthropicProvider, status: int
) -> None:
    server.replies.append(
        Reply.json(status, anthropic_error_body("authentication_error", f"bad key {API_KEY}"))
    )
    with pytest.raises(ProviderAuthError) as info:
        await provider.complete(REQUEST)
    assert_no_key(info.value)


async def test_bad_request_is_request_error(
    server: FakeAnthropicServer, provider: AnthropicProvider
) -> None:
    server.replies.append(
        Reply.json(400, anthropic_error_body("invalid_request_error", "messages: roles"))
    )
    with pytest.raises(ProviderRequestError) as info:
        await provider.complete(REQUEST)
    assert "roles" in str(info.value)


# ---- pure translation ---------------------------------------------------------


def test_merge_messages_alternates_and_starts_with_user() -> None:
    system, turns = merge_messages(
        [
            ChatMessage("system", "A"),
            ChatMessage("assistant", "Earlier answer"),
            ChatMessage("system", "B"),
            ChatMessage("user", "q1"),
            ChatMessage("user", ""),
            ChatMessage("user", "q2"),
            ChatMessage("assistant", "a1"),
            ChatMessage("assistant", "prefill  "),
        ]
    )
    assert system == "A\n\nB"
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant"]
    assert turns[1]["content"] == "Earlier answer"
    assert turns[2]["content"] == "q1\n\nq2"
    assert turns[3]["content"] == "a1\n\nprefill"


def test_payload_defaults_and_requires_a_turn() -> None:
    payload = build_messages_payload(
        ChatRequest(messages=[ChatMessage("user", "hi")], temperature=1.7), model="m"
    )
    assert payload["max_tokens"] == 1024
    assert payload["temperature"] == 1.0
    assert "system" not in payload
    with pytest.raises(ProviderRequestError):
        build_messages_payload(ChatRequest(messages=[ChatMessage("system", "x")]), model="m")


def test_stream_state_ignores_unknown_and_non_text_events() -> None:
    state = AnthropicStreamState()
    assert state.handle({"type": "ping"}) is None
    assert state.handle({"type": "something_new"}) is None
    delta = {"type": "input_json_delta", "partial_json": "{}"}
    assert state.handle({"type": "content_block_delta", "index": 1, "delta": delta}) is None
    with pytest.raises(ProviderBadResponse):
        state.handle(["not", "an", "object"])
