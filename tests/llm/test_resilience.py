"""The resilience layer: circuit breaker, retries before the first token, deadlines, fallbacks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pydantic import ValidationError

from botgpt.config import Settings
from botgpt.llm.base import ChatChunk, ChatMessage, ChatRequest, LLMProvider, Usage
from botgpt.llm.errors import (
    CircuitOpen,
    LLMError,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderRequestError,
    ProviderTimeout,
    ProviderUnavailable,
)
from botgpt.llm.factory import build_provider
from botgpt.llm.fake import FakeProvider, FakeReply
from botgpt.llm.providers.anthropic import AnthropicProvider
from botgpt.llm.providers.openai_compat import OpenAICompatProvider
from botgpt.llm.resilience import (
    BreakerProvider,
    BreakerState,
    CircuitBreaker,
    DeadlineProvider,
    FallbackProvider,
    RetryingProvider,
    breaker_states,
    counts_as_failure,
    stream_with_source,
)
from tests.fakes.openai_server import FakeOpenAIServer, Reply

REQUEST = ChatRequest(messages=[ChatMessage("user", "hello")], model="primary-model")


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SleepRecorder:
    """A `sleep` that returns at once and remembers what it was asked to wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def collect(provider: LLMProvider, request: ChatRequest = REQUEST) -> str:
    return "".join([chunk.delta async for chunk in provider.stream(request)])


async def drain(
    provider: LLMProvider, request: ChatRequest = REQUEST
) -> tuple[list[ChatChunk], LLMError | None]:
    """Every chunk received, and the error that ended the stream (if any)."""
    got: list[ChatChunk] = []
    try:
        async for chunk in provider.stream(request):
            got.append(chunk)
    except LLMError as error:
        return got, error
    return got, None


def text(chunks: list[ChatChunk]) -> str:
    return "".join(c.delta for c in chunks)


# --------------------------------------------------------------------------
# Circuit breaker.
# --------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def breaker_over(fake: FakeProvider, clock: FakeClock, failures: int = 3) -> BreakerProvider:
    return BreakerProvider(fake, failure_threshold=failures, reset_timeout=30.0, clock=clock)


async def test_breaker_opens_after_n_consecutive_failures_and_short_circuits(
    clock: FakeClock,
) -> None:
    fake = FakeProvider()
    provider = breaker_over(fake, clock, failures=3)
    fake.enqueue(*[ProviderUnavailable("HTTP 500")] * 3)
    for _ in range(3):
        with pytest.raises(ProviderUnavailable):
            await collect(provider)
    assert provider.breaker.state is BreakerState.OPEN
    clock.advance(10)
    with pytest.raises(CircuitOpen) as info:
        await collect(provider)
    assert info.value.code == "provider_circuit_open"
    assert info.value.retry_after == pytest.approx(20.0)
    assert len(fake.requests) == 3  # the open breaker did not call the provider


async def test_success_resets_the_consecutive_count(clock: FakeClock) -> None:
    fake = FakeProvider()
    provider = breaker_over(fake, clock, failures=3)
    fake.enqueue(ProviderTimeout("t"), ProviderTimeout("t"), "ok", ProviderTimeout("t"))
    for _ in range(2):
        with pytest.raises(ProviderTimeout):
            await collect(provider)
    assert await collect(provider) == "ok"
    with pytest.raises(ProviderTimeout):
        await collect(provider)
    assert provider.breaker.state is BreakerState.CLOSED
    assert provider.breaker.consecutive_failures == 1


@pytest.mark.parametrize(
    "error",
    [ProviderRequestError("HTTP 400 unknown model"), ProviderAuthError("HTTP 401")],
)
async def test_request_and_auth_errors_do_not_trip_the_breaker(
    clock: FakeClock, error: LLMError
) -> None:
    fake = FakeProvider()
    provider = breaker_over(fake, clock, failures=2)
    fake.enqueue(*[error] * 5)
    for _ in range(5):
        with pytest.raises(type(error)):
            await collect(provider)
    assert provider.breaker.state is BreakerState.CLOSED
    assert provider.breaker.consecutive_failures == 0


def test_what_counts_as_a_failure() -> None:
    assert counts_as_failure(ProviderUnavailable("500"))
    assert counts_as_failure(ProviderTimeout("slow"))
    assert counts_as_failure(ProviderRateLimited("429"))
    assert counts_as_failure(ProviderBadResponse("garbage"))
    assert not counts_as_failure(ProviderRequestError("400"))
    assert not counts_as_failure(ProviderAuthError("401"))
    assert not counts_as_failure(CircuitOpen("nested"))


async def test_half_open_lets_one_trial_through_and_success_closes(clock: FakeClock) -> None:
    fake = FakeProvider()
    provider = breaker_over(fake, clock, failures=2)
    fake.enqueue(ProviderUnavailable("500"), ProviderUnavailable("500"))
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            await collect(provider)
    clock.advance(30)
    assert provider.breaker.state is BreakerState.HALF_OPEN
    hold = asyncio.Event()
    fake.hold = hold
    fake.enqueue(FakeReply(text="trial answer", chunk_size=4))
    trial = provider.stream(REQUEST)
    waiting = asyncio.create_task(anext(trial))  # the trial is in flight, no token yet
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpen, match="trial"):
        await collect(provider)  # a second call meanwhile is short-circuited
    hold.set()
    fake.hold = None
    first = await waiting
    assert first.delta == "tria"
    # The first token closed the breaker, while the trial's reply is still streaming.
    assert provider.breaker.state is BreakerState.CLOSED
    assert await collect(provider) == "You said: hello"
    rest = [chunk.delta async for chunk in trial]
    assert "tria" + "".join(rest) == "trial answer"
    assert provider.breaker.state is BreakerState.CLOSED


async def test_trial_failing_after_its_first_token_counts_as_a_closed_failure(
    clock: FakeClock,
) -> None:
    fake = FakeProvider()
    provider = breaker_over(fake, clock, failures=2)
    fake.enqueue(ProviderUnavailable("500"), ProviderUnavailable("500"))
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            await collect(provider)
    clock.advance(30)
    fake.enqueue(
        FakeReply(
            text="abcdef", chunk_size=2, error=ProviderUnavailable("drop"), error_after_chunks=1
        )
    )
    got, error = await drain(provider)
    assert text(got) == "ab" and isinstance(error, ProviderUnavailable)
    assert provider.breaker.state is BreakerState.CLOSED  # the backend did answer
    assert provider.breaker.consecutive_failures == 1


async def test_other_turns_use_the_fallback_while_a_trial_waits_for_its_first_token(
    clock: FakeClock,
) -> None:
    first, second = FakeProvider(), FakeProvider(model="backup-model")
    primary = BreakerProvider(first, failure_threshold=1, reset_timeout=30, clock=clock)
    provider = FallbackProvider([primary, second])
    first.enqueue(ProviderUnavailable("500"))
    assert await collect(provider) == "You said: hello"  # answered by the fallback
    clock.advance(30)
    hold = asyncio.Event()
    first.hold = hold
    first.enqueue(FakeReply(text="trial reply " * 20, chunk_size=6, chunk_delay=0.01))
    trial = asyncio.create_task(collect(provider))
    for _ in range(1000):
        if len(first.requests) == 2:
            break
        await asyncio.sleep(0)
    # The trial is waiting on the primary: other turns are answered by the fallback.
    for _ in range(3):
        assert await collect(provider) == "You said: hello"
    assert len(second.requests) == 4
    hold.set()
    first.hold = None
    for _ in range(5000):
        if primary.breaker.state is BreakerState.CLOSED:
            break
        await asyncio.sleep(0.001)
    assert not trial.done()  # closed at the first token, the reply still streaming
    assert await collect(provider) == "You said: hello"
    assert len(first.requests) == 3  # the primary answers again
    assert await trial == "trial reply " * 20


async def test_half_open_trial_failure_reopens_for_another_cool_down(clock: FakeClock) -> None:
    fake = FakeProvider()
    provider = breaker_over(fake, clock, failures=1)
    fake.enqueue(ProviderUnavailable("500"), ProviderTimeout("still down"))
    with pytest.raises(ProviderUnavailable):
        await collect(provider)
    clock.advance(31)
    with pytest.raises(ProviderTimeout):
        await collect(provider)
    assert provider.breaker.state is BreakerState.OPEN
    clock.advance(29)
    with pytest.raises(CircuitOpen):
        await collect(provider)
    clock.advance(1)
    assert await collect(provider) == "You said: hello"
    assert provider.breaker.state is BreakerState.CLOSED


async def test_trial_without_verdict_frees_the_slot(clock: FakeClock) -> None:
    breaker = CircuitBreaker("p", failure_threshold=1, reset_timeout=5, clock=clock)
    breaker.acquire().failure()
    clock.advance(5)
    trial = breaker.acquire()
    with pytest.raises(CircuitOpen):
        breaker.acquire()
    trial.release()  # e.g. cancelled before any chunk: says nothing about health
    assert breaker.state is BreakerState.HALF_OPEN
    second = breaker.acquire()
    second.success()
    trial.failure()  # a late report of a finished permit is ignored
    assert breaker.state is BreakerState.CLOSED


async def test_outcomes_of_calls_started_before_opening_are_ignored(clock: FakeClock) -> None:
    breaker = CircuitBreaker("p", failure_threshold=1, reset_timeout=5, clock=clock)
    old = breaker.acquire()
    breaker.acquire().failure()
    assert breaker.state is BreakerState.OPEN
    old.success()
    assert breaker.state is BreakerState.OPEN


async def test_mid_stream_failure_counts_and_early_stop_after_text_is_a_success(
    clock: FakeClock,
) -> None:
    fake = FakeProvider()
    provider = breaker_over(fake, clock, failures=5)
    fake.enqueue(
        FakeReply(
            text="abcdefgh", chunk_size=2, error=ProviderUnavailable("drop"), error_after_chunks=2
        )
    )
    got, error = await drain(provider)
    assert text(got) == "abcd" and isinstance(error, ProviderUnavailable)
    assert provider.breaker.consecutive_failures == 1
    fake.enqueue(FakeReply(text="abcdefgh", chunk_size=2))
    stream = provider.stream(REQUEST)
    assert (await anext(stream)).delta == "ab"
    await stream.aclose()  # the consumer went away after text arrived
    assert provider.breaker.consecutive_failures == 0


# --------------------------------------------------------------------------
# Retries.
# --------------------------------------------------------------------------


async def test_retries_only_before_the_first_token() -> None:
    fake = FakeProvider()
    sleep = SleepRecorder()
    provider = RetryingProvider(fake, attempts=3, base_wait=0.5, sleep=sleep)
    fake.enqueue(ProviderUnavailable("500"), ProviderTimeout("slow"), "third time lucky")
    assert await collect(provider) == "third time lucky"
    assert len(fake.requests) == 3 and len(sleep.waits) == 2
    assert 0 <= sleep.waits[0] <= 0.5 and 0 <= sleep.waits[1] <= 1.0  # full jitter

    fake.enqueue(
        FakeReply(
            text="partial reply",
            chunk_size=4,
            error=ProviderUnavailable("dropped"),
            error_after_chunks=2,
        )
    )
    got, error = await drain(provider)
    assert isinstance(error, ProviderUnavailable)
    assert text(got) == "partial "  # delivered, not repeated
    assert len(fake.requests) == 4  # no retry after text


async def test_non_retryable_errors_are_not_retried() -> None:
    fake = FakeProvider()
    sleep = SleepRecorder()
    provider = RetryingProvider(fake, attempts=3, sleep=sleep)
    fake.enqueue(ProviderRequestError("400"), "never reached")
    with pytest.raises(ProviderRequestError):
        await collect(provider)
    assert len(fake.requests) == 1 and sleep.waits == []


async def test_retry_after_is_honoured_and_capped() -> None:
    fake = FakeProvider()
    sleep = SleepRecorder()
    provider = RetryingProvider(fake, attempts=3, base_wait=0.5, max_wait=10.0, sleep=sleep)
    fake.enqueue(
        ProviderRateLimited("429", retry_after=2.5),
        ProviderUnavailable("503", retry_after=60.0),
        "answer",
    )
    assert await collect(provider) == "answer"
    assert sleep.waits == [2.5, 10.0]


async def test_retries_stop_as_soon_as_the_breaker_opens(clock: FakeClock) -> None:
    fake = FakeProvider()
    sleep = SleepRecorder()
    inner = BreakerProvider(fake, failure_threshold=2, reset_timeout=30, clock=clock)
    provider = RetryingProvider(inner, attempts=5, sleep=sleep)
    fake.enqueue(*[ProviderUnavailable("500")] * 5)
    with pytest.raises(CircuitOpen):
        await collect(provider)
    assert len(fake.requests) == 2  # the third attempt was short-circuited, not sent
    assert len(sleep.waits) == 2  # CircuitOpen is not retryable: no wait after it


# --------------------------------------------------------------------------
# Deadlines.
# --------------------------------------------------------------------------


async def test_deadline_first_token() -> None:
    fake = FakeProvider()
    fake.enqueue(FakeReply(text="late", delay=5.0))
    provider = DeadlineProvider(fake, first_token_timeout=0.05, total_timeout=10)
    with pytest.raises(ProviderTimeout, match="first token"):
        await collect(provider)


async def test_deadline_total_keeps_partial_text() -> None:
    fake = FakeProvider()
    fake.enqueue(FakeReply(text="a slow reply", chunk_size=2, chunk_delay=0.04))
    provider = DeadlineProvider(fake, first_token_timeout=1.0, total_timeout=0.1)
    got, error = await drain(provider)
    assert isinstance(error, ProviderTimeout)
    assert 0 < len(text(got)) < len("a slow reply")


async def test_deadline_is_not_charged_for_a_slow_consumer() -> None:
    fake = FakeProvider()
    fake.enqueue(FakeReply(text="abcdef", chunk_size=2))
    provider = DeadlineProvider(fake, first_token_timeout=0.05, total_timeout=None)
    parts = []
    async for chunk in provider.stream(REQUEST):
        await asyncio.sleep(0.08)  # longer than the first-token timeout
        parts.append(chunk.delta)
    assert "".join(parts) == "abcdef"


# --------------------------------------------------------------------------
# Fallback chain.
# --------------------------------------------------------------------------


def chain(*fakes: FakeProvider) -> FallbackProvider:
    return FallbackProvider([RetryingProvider(f, attempts=2, sleep=SleepRecorder()) for f in fakes])


async def test_falls_back_when_the_first_fails_before_text() -> None:
    first, second = FakeProvider(model="groq-model"), FakeProvider(model="local-model")
    first.name, second.name = "groq", "local"
    provider = chain(first, second)
    first.enqueue(ProviderUnavailable("500"), ProviderTimeout("slow"))
    second.enqueue("from the fallback")
    pairs = [pair async for pair in provider.stream_with_source(REQUEST)]
    assert "".join(c.delta for _, c in pairs) == "from the fallback"
    sources = {source for source, _ in pairs}
    assert sources == {provider.providers[1]}
    (source,) = sources
    assert (source.name, source.model) == ("local", "local-model")
    assert len(first.requests) == 2 and len(second.requests) == 1
    assert first.requests[0].model == "primary-model"
    assert second.requests[0].model is None  # the primary's model name is not sent on


async def test_complete_reports_the_answering_model() -> None:
    first, second = FakeProvider(model="primary"), FakeProvider(model="backup")
    provider = chain(first, second)
    first.enqueue(ProviderAuthError("401"))
    second.enqueue("hi")
    result = await provider.complete(ChatRequest(messages=REQUEST.messages))
    assert (result.text, result.model) == ("hi", "backup")
    assert result.usage is not None


async def test_no_fallback_after_text_was_streamed() -> None:
    first, second = FakeProvider(), FakeProvider()
    provider = chain(first, second)
    first.enqueue(
        FakeReply(
            text="half an answer",
            chunk_size=5,
            error=ProviderUnavailable("dropped"),
            error_after_chunks=1,
        )
    )
    got, error = await drain(provider)
    assert isinstance(error, ProviderUnavailable) and error.code == "provider_unavailable"
    assert text(got) == "half "
    assert second.requests == []


async def test_all_fail_raises_the_last_typed_error() -> None:
    first, second, third = FakeProvider(), FakeProvider(), FakeProvider()
    provider = chain(first, second, third)
    first.enqueue(ProviderAuthError("401"))
    second.enqueue(ProviderUnavailable("500"), ProviderUnavailable("500"))
    third.enqueue(ProviderRequestError("context too long"))
    with pytest.raises(ProviderRequestError, match="context too long"):
        await collect(provider)
    assert [len(f.requests) for f in (first, second, third)] == [1, 2, 1]


async def test_open_breaker_moves_straight_to_the_fallback(clock: FakeClock) -> None:
    first, second = FakeProvider(), FakeProvider()
    primary = BreakerProvider(first, failure_threshold=1, reset_timeout=30, clock=clock)
    provider = FallbackProvider([primary, second])
    first.enqueue(ProviderUnavailable("500"))
    assert await collect(provider) == "You said: hello"
    assert await collect(provider) == "You said: hello"
    assert len(first.requests) == 1  # the second call never reached the primary
    assert len(second.requests) == 2


async def test_breaker_states_reports_each_member_of_a_wrapped_chain(clock: FakeClock) -> None:
    first, second = FakeProvider(model="primary-model"), FakeProvider(model="backup-model")
    provider = FallbackProvider(
        [
            RetryingProvider(
                BreakerProvider(first, failure_threshold=1, reset_timeout=30, clock=clock),
                attempts=1,
            ),
            DeadlineProvider(BreakerProvider(second, clock=clock), first_token_timeout=5),
        ]
    )
    assert breaker_states(provider) == [
        ("fake", "primary-model", BreakerState.CLOSED),
        ("fake", "backup-model", BreakerState.CLOSED),
    ]
    first.enqueue(ProviderUnavailable("500"))
    await collect(provider)
    assert [s for _, _, s in breaker_states(provider)] == [BreakerState.OPEN, BreakerState.CLOSED]


class _MetaThenFail(LLMProvider):
    """Sends a usage chunk, then fails before any text."""

    name = "meta"

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        yield ChatChunk(usage=Usage(99, 99))
        raise ProviderUnavailable("gone")


async def test_chunks_of_a_failed_provider_are_not_leaked() -> None:
    second = FakeProvider()
    provider = FallbackProvider([_MetaThenFail(), second])
    got, error = await drain(provider)
    assert error is None and text(got) == "You said: hello"
    assert all(c.usage != Usage(99, 99) for c in got)


async def test_stream_with_source_for_a_plain_provider() -> None:
    fake = FakeProvider()
    pairs = [pair async for pair in stream_with_source(fake, REQUEST)]
    assert {source for source, _ in pairs} == {fake}


def test_fallback_capabilities() -> None:
    big, small = FakeProvider(context_window=128_000), FakeProvider(context_window=2048)
    provider = FallbackProvider([big, small])
    assert provider.context_window == 2048  # the prompt must fit whoever answers
    assert FallbackProvider([big, small], context_window=8000).context_window == 8000
    with pytest.raises(ValueError):
        FallbackProvider([])


# --------------------------------------------------------------------------
# Settings and factory.
# --------------------------------------------------------------------------


def make_settings(**values: object) -> Settings:
    return Settings(_env_file=None, environment="test", **values)  # type: ignore[call-arg, arg-type]


def test_fallbacks_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "BOTGPT_LLM_FALLBACKS",
        '[{"provider":"openai","base_url":"https://api.groq.com/openai/v1",'
        '"api_key":"gsk-secret","model":"llama-3.1-8b-instant","name":"groq"},'
        '{"provider":"local"}]',
    )
    settings = make_settings()
    groq, local = settings.llm_fallbacks
    assert groq.api_key is not None and groq.api_key.get_secret_value() == "gsk-secret"
    assert "gsk-secret" not in repr(settings)
    assert (local.provider, local.model) == ("local", "")


@pytest.mark.parametrize(
    "entry",
    [{"provider": "cohere"}, {"provider": "anthropic"}, {"provider": "openai", "apikey": "typo"}],
)
def test_invalid_fallbacks_are_rejected(entry: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        make_settings(llm_fallbacks=[entry])


async def test_build_provider_with_an_injected_base() -> None:
    fake = FakeProvider()
    provider = build_provider(
        make_settings(llm_breaker_failures=7, llm_fallbacks=[{"provider": "local"}]), fake
    )
    assert isinstance(provider, RetryingProvider)
    assert isinstance(provider.inner, BreakerProvider) and provider.inner.inner is fake
    assert provider.inner.breaker.failure_threshold == 7
    assert await collect(provider) == "You said: hello"


async def test_build_provider_builds_the_chain_with_timeouts() -> None:
    settings = make_settings(
        llm_provider="openai",
        llm_api_key="sk-primary",
        llm_connect_timeout_seconds=2.0,
        llm_first_token_timeout_seconds=7.0,
        llm_timeout_seconds=40.0,
        llm_fallbacks=[
            {
                "provider": "openai",
                "base_url": "https://api.groq.com/openai/v1",
                "api_key": "g",
                "name": "groq",
            },
            {"provider": "anthropic", "api_key": "sk-ant"},
            {"provider": "local"},
        ],
    )
    provider = build_provider(settings)
    assert isinstance(provider, FallbackProvider)
    try:
        assert [p.name for p in provider.providers] == ["openai", "groq", "anthropic", "local"]
        raws: list[LLMProvider] = []
        breakers: set[int] = set()
        for member in provider.providers:
            assert isinstance(member, RetryingProvider)
            assert isinstance(member.inner, BreakerProvider)
            raws.append(member.inner.inner)
            breakers.add(id(member.inner.breaker))
        openai, groq, anthropic, local = raws
        assert isinstance(openai, OpenAICompatProvider) and isinstance(groq, OpenAICompatProvider)
        assert isinstance(anthropic, AnthropicProvider)
        assert groq.base_url == "https://api.groq.com/openai/v1"
        for http in (openai, groq, anthropic):
            timeouts = http.timeouts
            assert (timeouts.connect, timeouts.first_token, timeouts.total) == (2.0, 7.0, 40.0)
        assert isinstance(local, DeadlineProvider)
        assert (local.first_token_timeout, local.total_timeout) == (7.0, 40.0)
        assert len(breakers) == 4  # each provider has a breaker of its own
    finally:
        await provider.aclose()


# --------------------------------------------------------------------------
# End to end: a real HTTP provider failing, the fallback answering.
# --------------------------------------------------------------------------


async def test_http_provider_fails_three_times_then_the_fallback_answers() -> None:
    async with FakeOpenAIServer() as server:
        for _ in range(3):
            server.replies.append(Reply.json(500, {"error": {"message": "upstream exploded"}}))
        http = OpenAICompatProvider(
            server.base_url,
            "sk-test-0123456789",
            "gpt-test",
            connect_timeout=2.0,
            first_token_timeout=2.0,
            total_timeout=10.0,
        )
        sleep = SleepRecorder()
        breaker = CircuitBreaker("openai", failure_threshold=5)
        primary = RetryingProvider(BreakerProvider(http, breaker), attempts=3, sleep=sleep)
        fallback = FakeProvider(model="backup-model")
        fallback.enqueue("The fallback answered.")
        provider = FallbackProvider([primary, RetryingProvider(BreakerProvider(fallback))])
        try:
            pairs = [pair async for pair in stream_with_source(provider, REQUEST)]
        finally:
            await provider.aclose()
    assert "".join(c.delta for _, c in pairs) == "The fallback answered."
    assert {source.model for source, _ in pairs} == {"backup-model"}
    assert len(server.requests) == 3
    assert server.requests[0].json()["model"] == "primary-model"
    assert len(sleep.waits) == 2
    assert breaker.consecutive_failures == 3
    assert breaker.state is BreakerState.CLOSED
