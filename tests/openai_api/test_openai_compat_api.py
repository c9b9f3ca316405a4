"""The OpenAI-compatible API, driven by the official `openai` client (and raw HTTP for framing)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import openai
import pytest
from starlette.requests import ClientDisconnect

from botgpt.llm.base import ChatChunk, ChatRequest
from botgpt.llm.errors import LLMError, ProviderBadResponse, ProviderTimeout, ProviderUnavailable
from botgpt.llm.fake import FakeProvider, FakeReply
from botgpt.retrieval.embedders import MINILM_MODEL_NAME
from tests.conftest import AppCtx, AuthedUser, serve_app

LONG = "The quick brown fox jumps over the lazy dog. " * 4


@pytest.fixture
async def api_key(client: httpx.AsyncClient, user: AuthedUser) -> str:
    """A BOT GPT API key created through the API."""
    r = await client.post("/api/v1/api-keys", json={"name": "openai-sdk"}, headers=user.headers)
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    return key


def sdk_client(ctx: AppCtx, api_key: str) -> openai.AsyncOpenAI:
    """The official OpenAI client talking to the app in-process (no retries)."""
    return openai.AsyncOpenAI(
        api_key=api_key,
        base_url="http://test/v1",
        # openai>=3 annotates `http_client` as httpx2 but accepts an httpx client at run time.
        http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=ctx.app)),  # type: ignore[arg-type]
        max_retries=0,
    )


@pytest.fixture
async def oai(ctx: AppCtx, api_key: str) -> AsyncIterator[openai.AsyncOpenAI]:
    """An `openai.AsyncOpenAI` client authenticated with a BOT GPT API key."""
    client = sdk_client(ctx, api_key)
    yield client
    await client.close()


def failures(ctx: AppCtx, error: LLMError) -> list[LLMError]:
    """Enough copies of `error` to exhaust the provider retries."""
    return [error] * ctx.settings.llm_retry_attempts


async def test_completion_with_usage(oai: openai.AsyncOpenAI, fake: FakeProvider) -> None:
    fake.enqueue("Hello from the fake model.")
    out = await oai.chat.completions.create(
        model=fake.model,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"},
        ],
        max_tokens=50,
        temperature=0.2,
        user="end-user-1",
    )
    assert out.object == "chat.completion"
    assert out.id.startswith("chatcmpl-")
    assert out.model == fake.model
    assert out.created > 0
    assert len(out.choices) == 1
    choice = out.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello from the fake model."
    assert choice.finish_reason == "stop"
    assert out.usage is not None
    assert out.usage.prompt_tokens > 0 and out.usage.completion_tokens > 0
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    sent = fake.requests[-1]
    assert [(m.role, m.content) for m in sent.messages] == [
        ("system", "Be brief."),
        ("user", "Say hello"),
    ]
    assert sent.max_tokens == 50 and sent.temperature == 0.2


async def test_max_completion_tokens_and_alias(oai: openai.AsyncOpenAI, fake: FakeProvider) -> None:
    out = await oai.chat.completions.create(
        model="botgpt",
        messages=[{"role": "developer", "content": "Rules."}, {"role": "user", "content": "ping"}],
        max_completion_tokens=7,
        n=1,
    )
    assert out.model == fake.model
    assert out.choices[0].message.content == "You said: ping"
    sent = fake.requests[-1]
    assert sent.max_tokens == 7
    assert sent.messages[0].role == "system"


async def test_streaming_deltas_and_usage(oai: openai.AsyncOpenAI, fake: FakeProvider) -> None:
    fake.enqueue(FakeReply(text=LONG, chunk_size=7))
    stream = await oai.chat.completions.create(
        model=fake.model,
        messages=[{"role": "user", "content": "Tell me about foxes"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) == -(-len(LONG) // 7)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == LONG
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert last.usage.completion_tokens == max(1, len(LONG) // 4)
    assert all(c.usage is None for c in chunks[:-1])


async def test_streaming_without_usage_chunk(oai: openai.AsyncOpenAI, fake: FakeProvider) -> None:
    stream = await oai.chat.completions.create(
        model=fake.model, messages=[{"role": "user", "content": "echo"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "You said: echo"
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_models(oai: openai.AsyncOpenAI, fake: FakeProvider) -> None:
    page = await oai.models.list()
    assert [m.id for m in page.data] == [fake.model, MINILM_MODEL_NAME]  # chat, embeddings
    assert page.data[0].object == "model"
    model = await oai.models.retrieve(fake.model)
    assert model.id == fake.model
    with pytest.raises(openai.NotFoundError):
        await oai.models.retrieve("gpt-nonexistent")


async def test_jwt_access_token_works(ctx: AppCtx, user: AuthedUser, fake: FakeProvider) -> None:
    async with sdk_client(ctx, user.access_token) as client:
        page = await client.models.list()
    assert page.data[0].id == fake.model


async def test_bad_api_key_is_authentication_error(ctx: AppCtx, fake: FakeProvider) -> None:
    async with sdk_client(ctx, "bgpt_not-a-real-key") as client:
        with pytest.raises(openai.AuthenticationError) as info:
            await client.chat.completions.create(
                model=fake.model, messages=[{"role": "user", "content": "hi"}]
            )
        with pytest.raises(openai.AuthenticationError):
            await client.models.list()
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"
    assert info.value.type == "invalid_request_error"
    assert fake.requests == []


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ProviderUnavailable("HTTP 500 from upstream"), 503, "provider_unavailable"),
        (ProviderTimeout("timed out"), 504, "provider_timeout"),
        (ProviderBadResponse("garbage"), 502, "provider_bad_response"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_provider_failure_is_api_status_error(
    oai: openai.AsyncOpenAI,
    ctx: AppCtx,
    fake: FakeProvider,
    error: LLMError,
    status: int,
    code: str,
    stream: bool,
) -> None:
    fake.enqueue(*failures(ctx, error))
    with pytest.raises(openai.APIStatusError) as info:
        await oai.chat.completions.create(
            model=fake.model, messages=[{"role": "user", "content": "hi"}], stream=stream
        )
    assert info.value.status_code == status
    assert info.value.code == code
    assert info.value.type == "server_error"
    assert "upstream" not in info.value.message and "garbage" not in info.value.message


async def test_failure_mid_stream_ends_with_error_event(
    oai: openai.AsyncOpenAI, fake: FakeProvider
) -> None:
    fake.enqueue(
        FakeReply(text=LONG, chunk_size=8, error=ProviderUnavailable("reset"), error_after_chunks=2)
    )
    stream = await oai.chat.completions.create(
        model=fake.model, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == LONG[:16]
    assert isinstance(info.value.body, dict)
    assert info.value.body["code"] == "provider_unavailable"


async def test_n_greater_than_one_is_rejected(oai: openai.AsyncOpenAI, fake: FakeProvider) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await oai.chat.completions.create(
            model=fake.model, messages=[{"role": "user", "content": "hi"}], n=2
        )
    assert info.value.status_code == 400
    assert info.value.param == "n"
    assert "n=1" in info.value.message
    assert fake.requests == []


async def test_unknown_model_is_model_not_found(
    oai: openai.AsyncOpenAI, fake: FakeProvider
) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await oai.chat.completions.create(
            model="gpt-unknown", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.code == "model_not_found"
    assert info.value.param == "model"
    assert fake.requests == []


async def test_list_of_parts_content(oai: openai.AsyncOpenAI, fake: FakeProvider) -> None:
    out = await oai.chat.completions.create(
        model=fake.model,
        messages=[
            {"role": "system", "content": [{"type": "text", "text": "You are terse."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "first part"},
                    {"type": "text", "text": "second part"},
                ],
            },
        ],
    )
    assert out.choices[0].message.content == "You said: first part\nsecond part"
    sent = fake.requests[-1]
    assert [(m.role, m.content) for m in sent.messages] == [
        ("system", "You are terse."),
        ("user", "first part\nsecond part"),
    ]


async def test_non_text_parts_are_rejected(oai: openai.AsyncOpenAI, fake: FakeProvider) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await oai.chat.completions.create(
            model=fake.model,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
                    ],
                }
            ],
        )
    assert info.value.param == "messages[0].content[0]"
    assert "image_url" in info.value.message


async def test_context_length_exceeded(oai: openai.AsyncOpenAI, fake: FakeProvider) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await oai.chat.completions.create(
            model=fake.model,
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=fake.context_window + 1,
        )
    assert info.value.code == "context_length_exceeded"
    assert fake.requests == []


# -- raw HTTP -----------------------------------------------------------------------------------


def sse_data(raw: str) -> list[str]:
    """The `data:` payloads of an SSE body, checking the framing on the way."""
    assert raw.endswith("\n\n")
    frames = raw[:-2].split("\n\n")
    payloads = []
    for frame in frames:
        assert frame.startswith("data: ") and "\n" not in frame, frame
        payloads.append(frame.removeprefix("data: "))
    return payloads


async def test_sse_framing_and_headers(
    client: httpx.AsyncClient, api_key: str, fake: FakeProvider
) -> None:
    fake.enqueue(FakeReply(text="Hello, world!", chunk_size=5))
    r = await client.post(
        "/v1/chat/completions",
        json={
            "model": fake.model,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["x-accel-buffering"] == "no"
    payloads = sse_data(r.text)
    assert payloads[-1] == "[DONE]"
    events = [json.loads(p) for p in payloads[:-1]]
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [e["choices"][0]["delta"] for e in events[1:-2]]
    assert deltas == [{"content": "Hello"}, {"content": ", wor"}, {"content": "ld!"}]
    assert events[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] > 0
    assert all(e["usage"] is None for e in events[:-1])
    assert {e["object"] for e in events} == {"chat.completion.chunk"}


async def test_sse_error_event_after_start(
    client: httpx.AsyncClient, api_key: str, fake: FakeProvider
) -> None:
    fake.enqueue(
        FakeReply(text=LONG, chunk_size=8, error=ProviderTimeout("slow"), error_after_chunks=1)
    )
    r = await client.post(
        "/v1/chat/completions",
        json={"model": fake.model, "messages": [{"role": "user", "content": "hi"}], "stream": True},
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert r.status_code == 200
    payloads = sse_data(r.text)
    assert "[DONE]" not in payloads
    last = json.loads(payloads[-1])
    assert last == {
        "error": {
            "message": "The language model did not answer in time.",
            "type": "server_error",
            "param": None,
            "code": "provider_timeout",
        }
    }
    assert json.loads(payloads[1])["choices"][0]["delta"] == {"content": LONG[:8]}


async def test_errors_use_openai_envelope_only_on_v1(
    client: httpx.AsyncClient, api_key: str, fake: FakeProvider
) -> None:
    r = await client.post(
        "/v1/chat/completions", json={"model": fake.model, "messages": "not a list"}
    )
    assert r.status_code == 401
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    auth = {"Authorization": f"Bearer {api_key}"}
    r = await client.post("/v1/chat/completions", json={"messages": []}, headers=auth)
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    r = await client.post(
        "/v1/chat/completions",
        content=b"{not json",
        headers={**auth, "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = await client.post(
        "/v1/chat/completions",
        json={"model": fake.model, "messages": [{"role": "tool", "content": "x"}]},
        headers=auth,
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages[0].role"
    # The rest of the API keeps BOT GPT's own envelope.
    r = await client.get("/api/v1/users/me")
    assert r.status_code == 401 and set(r.json()["error"]) == {"code", "message", "details"}


# -- client disconnects -------------------------------------------------------------------------


def watch_provider(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> tuple[asyncio.Event, list[ChatChunk]]:
    """Record the chunks the fake produces and whether its stream was closed."""
    closed = asyncio.Event()
    produced: list[ChatChunk] = []
    original = fake.stream

    async def watched(request: ChatRequest) -> AsyncIterator[ChatChunk]:
        try:
            async for chunk in original(request):
                produced.append(chunk)
                yield chunk
        finally:
            closed.set()

    monkeypatch.setattr(fake, "stream", watched)
    return closed, produced


@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])
async def test_client_disconnect_stops_the_provider(
    ctx: AppCtx,
    api_key: str,
    fake: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
    spec_version: str,
) -> None:
    closed, produced = watch_provider(fake, monkeypatch)
    fake.enqueue(FakeReply(text="x" * 2000, chunk_size=4, chunk_delay=0.005))  # 500 chunks
    body = json.dumps(
        {"model": fake.model, "messages": [{"role": "user", "content": "go"}], "stream": True}
    ).encode()
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec_version},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"test"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {api_key}".encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("test", 80),
    }
    requested = False
    gone = asyncio.Event()
    bodies: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            if gone.is_set() and spec_version == "2.4":
                raise OSError("connection reset by peer")
            bodies.append(message["body"])
            if len(bodies) >= 3:
                gone.set()

    with contextlib.suppress(ClientDisconnect):  # how Starlette reports the 2.4 hang-up
        await asyncio.wait_for(ctx.app(scope, receive, send), timeout=5)
    await asyncio.wait_for(closed.wait(), timeout=2)
    assert b"".join(bodies).startswith(b"data: ")
    assert len(produced) < 100  # far from the 500 chunks of the whole reply


@pytest.fixture
async def live(ctx: AppCtx) -> AsyncIterator[str]:
    """The app served by a real uvicorn server; yields its base URL."""
    async with serve_app(ctx.app) as port:
        yield f"http://127.0.0.1:{port}"


async def test_sdk_closing_a_stream_over_the_network_stops_the_provider(
    live: str, api_key: str, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed, produced = watch_provider(fake, monkeypatch)
    fake.enqueue(FakeReply(text="y" * 2000, chunk_size=4, chunk_delay=0.005))
    async with openai.AsyncOpenAI(
        api_key=api_key, base_url=f"{live}/v1", max_retries=0, timeout=10
    ) as client:
        stream = await client.chat.completions.create(
            model=fake.model, messages=[{"role": "user", "content": "go"}], stream=True
        )
        seen = 0
        async for _ in stream:
            seen += 1
            if seen == 3:
                break
        await stream.close()
    await asyncio.wait_for(closed.wait(), timeout=3)
    assert len(produced) < 200
