"""The resilience layer: retries, a circuit breaker, deadlines and a fallback chain.

Every wrapper here is itself an `LLMProvider`, so they compose. The factory builds,
for each configured provider, ``RetryingProvider(BreakerProvider(raw))`` (plus a
`DeadlineProvider` for backends without their own timeouts) and puts the members
of the chain in a `FallbackProvider`:

* retries sit *outside* the breaker, so every real attempt is counted by the
  breaker and, once it opens, the next attempt fails at once with `CircuitOpen`
  (not retryable) instead of being slept on and retried;
* the fallback sits outside everything, so a provider is abandoned only after
  its own retries are spent or its breaker is open, and always before any text
  reached the caller.

The rule shared by all of them: once a chunk of text has been streamed, nothing
is retried or replayed on another provider (it would duplicate or contradict
what the caller already has); the failure propagates as a typed `LLMError`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

from botgpt.llm.base import ChatChunk, ChatRequest, ChatResult, LLMProvider, Usage
from botgpt.llm.errors import CircuitOpen, LLMError, ProviderBadResponse, ProviderTimeout

__all__ = [
    "BreakerPermit",
    "BreakerProvider",
    "BreakerState",
    "CircuitBreaker",
    "Clock",
    "DeadlineProvider",
    "FallbackProvider",
    "RetryingProvider",
    "Sleep",
    "counts_as_failure",
    "stream_with_source",
]

log = logging.getLogger("botgpt.llm")

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

_T = TypeVar("_T")


@asynccontextmanager
async def _closing(iterator: AsyncIterator[_T]) -> AsyncIterator[AsyncIterator[_T]]:
    """Close an async generator on exit, even when the consumer stopped early."""
    try:
        yield iterator
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


def _copy_capabilities(target: LLMProvider, inner: LLMProvider) -> None:
    """Make a wrapper look like the provider it wraps."""
    target.name = inner.name
    target.model = inner.model
    target.context_window = inner.context_window
    target.supports_streaming = inner.supports_streaming
    target.supports_system_prompt = inner.supports_system_prompt
    target.supports_usage = inner.supports_usage


# --------------------------------------------------------------------------
# Retries.
# --------------------------------------------------------------------------


class RetryingProvider(LLMProvider):
    """Wraps a provider: a retryable failure before any text was streamed is tried again.

    Once a chunk of text has reached the caller a retry would duplicate it, so later
    failures propagate. Waits grow exponentially with full jitter; a provider's
    `Retry-After` is honoured (capped at `max_wait`). Non-retryable errors,
    including `CircuitOpen` from a breaker inside, propagate at once.
    """

    def __init__(
        self,
        inner: LLMProvider,
        attempts: int = 3,
        base_wait: float = 0.5,
        max_wait: float = 20.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.inner = inner
        _copy_capabilities(self, inner)
        self.attempts = attempts
        self.base_wait = base_wait
        self.max_wait = max_wait
        self._sleep = sleep

    def wait_for(self, attempt: int, error: LLMError) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        if error.retry_after is not None:
            return min(self.max_wait, max(0.0, error.retry_after))
        return random.uniform(0, min(self.max_wait, self.base_wait * 2 ** (attempt - 1)))

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Stream from the inner provider, retrying failures that happen before any text."""
        attempt = 0
        while True:
            attempt += 1
            started = False
            try:
                async with _closing(self.inner.stream(request)) as chunks:
                    async for chunk in chunks:
                        if chunk.delta:
                            started = True
                        yield chunk
                return
            except LLMError as error:
                if started or not error.retryable or attempt >= self.attempts:
                    raise
                wait = self.wait_for(attempt, error)
                log.warning(
                    "provider %s failed (%s), retry %d in %.2fs",
                    self.name,
                    error.code,
                    attempt,
                    wait,
                )
                await self._sleep(wait)

    async def aclose(self) -> None:
        """Close the inner provider."""
        await self.inner.aclose()


# --------------------------------------------------------------------------
# Circuit breaker.
# --------------------------------------------------------------------------


def counts_as_failure(error: LLMError) -> bool:
    """Whether `error` says the backend is unhealthy (and so counts towards opening a breaker).

    Timeouts, rate limits, 5xx/dropped connections (the retryable errors) and
    unparseable answers count. A rejected request (400/404/422) or refused
    credentials (401/403) do not: the backend is up and answering, the fault is
    in our request or configuration, and the answer comes back fast anyway.
    `CircuitOpen` from a nested breaker does not count either.
    """
    return error.retryable or isinstance(error, ProviderBadResponse)


class BreakerState(enum.StrEnum):
    """The three states of a circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerPermit:
    """Leave to make one call through a `CircuitBreaker`; report its outcome exactly once.

    `success()`, `failure()` and `release()` (the call ended without a verdict,
    e.g. it was cancelled) are idempotent: only the first report counts. A
    permit of a half-open breaker is the single trial call.
    """

    __slots__ = ("_breaker", "_done", "trial")

    def __init__(self, breaker: CircuitBreaker, trial: int | None) -> None:
        self._breaker = breaker
        self._done = False
        self.trial = trial

    def success(self) -> None:
        """The call succeeded."""
        if not self._done:
            self._done = True
            self._breaker._on_success(self.trial)

    def failure(self) -> None:
        """The call failed in a way that counts against the backend."""
        if not self._done:
            self._done = True
            self._breaker._on_failure(self.trial)

    def release(self) -> None:
        """The call ended without saying anything about the backend's health."""
        if not self._done:
            self._done = True
            self._breaker._on_release(self.trial)


class CircuitBreaker:
    """A per-provider circuit breaker: closed, open after N consecutive failures, half-open.

    Closed: calls pass; `failure_threshold` consecutive failures (see
    `counts_as_failure`) open it, a success resets the count. Open: `acquire`
    raises `CircuitOpen` (with `retry_after` = the rest of the cool-down) for
    `reset_timeout` seconds. Then half-open: exactly one trial call is let
    through; its success closes the breaker, its failure opens it for another
    cool-down, and other calls meanwhile get `CircuitOpen`. A trial that never
    reports back (leaked) is replaced after another `reset_timeout`. Outcomes of
    calls that started before the breaker opened are ignored once it is open.
    The clock is injectable for tests; there are no awaits inside, so one
    instance is safe to share between the tasks of an event loop.
    """

    def __init__(
        self,
        name: str = "provider",
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_timeout < 0:
            raise ValueError("reset_timeout must not be negative")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial: int | None = None
        self._trial_started = 0.0
        self._trials = 0

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose cool-down has passed is half-open)."""
        self._refresh()
        return self._state

    @property
    def consecutive_failures(self) -> int:
        """Failures counted since the last success or reset."""
        return self._failures

    def _refresh(self) -> None:
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.reset_timeout
        ):
            self._state = BreakerState.HALF_OPEN
            self._trial = None
            log.info("circuit of %s is half-open: next call is a trial", self.name)

    def acquire(self) -> BreakerPermit:
        """Permission for one call, or `CircuitOpen` when calls are being short-circuited."""
        self._refresh()
        now = self._clock()
        if self._state is BreakerState.CLOSED:
            return BreakerPermit(self, None)
        if self._state is BreakerState.HALF_OPEN:
            if self._trial is None or now - self._trial_started >= self.reset_timeout:
                self._trials += 1
                self._trial = self._trials
                self._trial_started = now
                return BreakerPermit(self, self._trial)
            raise CircuitOpen(
                f"{self.name}: circuit half-open, a trial call is in progress",
                retry_after=max(0.0, self._trial_started + self.reset_timeout - now),
            )
        raise CircuitOpen(
            f"{self.name}: circuit open after {self._failures} consecutive failures",
            retry_after=max(0.0, self._opened_at + self.reset_timeout - now),
        )

    def reset(self) -> None:
        """Close the breaker and forget the failures (e.g. from an admin action)."""
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._trial = None

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._trial = None
        log.warning(
            "circuit of %s opened after %d consecutive failures; cool-down %.1fs",
            self.name,
            self._failures,
            self.reset_timeout,
        )

    def _is_current_trial(self, trial: int | None) -> bool:
        self._refresh()
        return trial is not None and self._state is BreakerState.HALF_OPEN and trial == self._trial

    def _on_success(self, trial: int | None) -> None:
        if self._is_current_trial(trial):
            log.info("circuit of %s closed: trial call succeeded", self.name)
            self.reset()
        elif trial is None and self._state is BreakerState.CLOSED:
            self._failures = 0

    def _on_failure(self, trial: int | None) -> None:
        if self._is_current_trial(trial):
            self._failures += 1
            self._open()
        elif trial is None and self._state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._open()

    def _on_release(self, trial: int | None) -> None:
        if self._is_current_trial(trial):
            self._trial = None


class BreakerProvider(LLMProvider):
    """Wraps a provider with a `CircuitBreaker`: fails fast with `CircuitOpen` while it is open.

    The permit is taken when the stream is first iterated (not when `stream` is
    called). A stream that ends normally is a success; an `LLMError` for which
    `counts_as_failure` holds, at any point of the stream, is a failure (a
    backend that drops streams midway is unhealthy too). Other errors release
    the permit without a verdict; so does a consumer that stops or is cancelled
    before any chunk arrived, while one that stops after chunks arrived counts
    as a success (the backend was answering).
    """

    def __init__(
        self,
        inner: LLMProvider,
        breaker: CircuitBreaker | None = None,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.inner = inner
        _copy_capabilities(self, inner)
        self.breaker = breaker or CircuitBreaker(
            inner.name, failure_threshold, reset_timeout, clock=clock
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Stream from the inner provider unless the breaker is open; record the outcome."""
        permit = self.breaker.acquire()
        received = False
        try:
            async with _closing(self.inner.stream(request)) as chunks:
                async for chunk in chunks:
                    received = True
                    yield chunk
        except LLMError as error:
            if counts_as_failure(error):
                permit.failure()
            else:
                permit.release()
            raise
        except BaseException:
            # Cancelled, consumer stopped (GeneratorExit) or a bug.
            if received:
                permit.success()
            else:
                permit.release()
            raise
        permit.success()

    async def aclose(self) -> None:
        """Close the inner provider."""
        await self.inner.aclose()


# --------------------------------------------------------------------------
# Deadlines for providers without their own.
# --------------------------------------------------------------------------


class DeadlineProvider(LLMProvider):
    """Wraps a provider that has no timeouts of its own (e.g. the in-process model).

    `first_token_timeout` bounds the wait from the start of the call to the first
    chunk with text; `total_timeout` (None: unbounded) bounds the whole call. As
    in the HTTP providers, deadlines are enforced around each wait for the inner
    stream, never across a `yield`, so a slow consumer is not cancelled by them.
    An expired deadline cancels the inner stream and raises `ProviderTimeout`.
    """

    def __init__(
        self,
        inner: LLMProvider,
        first_token_timeout: float,
        total_timeout: float | None = None,
    ) -> None:
        self.inner = inner
        _copy_capabilities(self, inner)
        self.first_token_timeout = first_token_timeout
        self.total_timeout = total_timeout

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Stream from the inner provider under the first-token and total deadlines."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        total = None if self.total_timeout is None else start + self.total_timeout
        first = start + self.first_token_timeout
        if total is not None:
            first = min(first, total)
        seen_text = False
        async with _closing(self.inner.stream(request)) as chunks:
            while True:
                deadline = total if seen_text else first
                what = "streaming the reply" if seen_text else "waiting for the first token"
                try:
                    async with asyncio.timeout_at(deadline):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                except TimeoutError as exc:
                    raise ProviderTimeout(f"{self.name}: timed out {what}") from exc
                if chunk.delta:
                    seen_text = True
                yield chunk

    async def aclose(self) -> None:
        """Close the inner provider."""
        await self.inner.aclose()


# --------------------------------------------------------------------------
# Fallback chain.
# --------------------------------------------------------------------------


class FallbackProvider(LLMProvider):
    """Tries a chain of providers in order; the next one takes over only before any text.

    A provider failing with any `LLMError` before it streamed text (after its
    own retries, or at once with `CircuitOpen`) hands the request to the next
    one; the last error is raised when every provider failed. A failure after
    text propagates at once, with the partial text already delivered. Chunks
    without text (usage, finish reason) are held back until the first text
    arrives or the stream ends, so everything a caller receives comes from
    exactly one provider. Fallback members get the request with `model=None`:
    a model name set on the request belongs to the primary.

    Which provider answered is reported per call, without shared state, by
    `stream_with_source`, which pairs each chunk with the chain member that
    produced it (use the module-level `stream_with_source` to handle any
    provider the same way). `name`, `model` and the capability flags are the
    primary's; `context_window` defaults to the smallest in the chain, because
    the prompt is built before it is known who will answer and must fit the
    fallback exactly when it is needed.
    """

    def __init__(
        self, providers: Sequence[LLMProvider], *, context_window: int | None = None
    ) -> None:
        if not providers:
            raise ValueError("FallbackProvider needs at least one provider")
        self.providers = list(providers)
        primary = self.providers[0]
        _copy_capabilities(self, primary)
        self.context_window = context_window or min(p.context_window for p in self.providers)
        self.supports_streaming = all(p.supports_streaming for p in self.providers)
        self.supports_system_prompt = all(p.supports_system_prompt for p in self.providers)
        self.supports_usage = all(p.supports_usage for p in self.providers)

    async def stream_with_source(
        self, request: ChatRequest
    ) -> AsyncIterator[tuple[LLMProvider, ChatChunk]]:
        """Yield `(provider, chunk)` pairs, `provider` being the chain member that answers."""
        errors: list[tuple[LLMProvider, LLMError]] = []
        for index, provider in enumerate(self.providers):
            attempt = request if index == 0 else dataclasses.replace(request, model=None)
            held: list[ChatChunk] = []
            started = False
            try:
                async with _closing(provider.stream(attempt)) as chunks:
                    async for chunk in chunks:
                        if not started and not chunk.delta:
                            held.append(chunk)
                            continue
                        if not started:
                            started = True
                            if errors:
                                log.warning(
                                    "answering with fallback %s/%s after: %s",
                                    provider.name,
                                    provider.model,
                                    _describe(errors),
                                )
                            for early in held:
                                yield provider, early
                            held.clear()
                        yield provider, chunk
            except LLMError as error:
                if started:
                    raise
                errors.append((provider, error))
                continue
            for early in held:
                yield provider, early
            return
        log.warning("every provider failed: %s", _describe(errors))
        raise errors[-1][1]

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Yield the chunks of the first provider that answers."""
        async with _closing(self.stream_with_source(request)) as pairs:
            async for _, chunk in pairs:
                yield chunk

    async def complete(self, request: ChatRequest) -> ChatResult:
        """Collect the reply; `model` is that of the provider that actually answered."""
        parts: list[str] = []
        usage: Usage | None = None
        finish: str | None = None
        source: LLMProvider = self.providers[0]
        async with _closing(self.stream_with_source(request)) as pairs:
            async for answering, chunk in pairs:
                source = answering
                if chunk.delta:
                    parts.append(chunk.delta)
                if chunk.usage is not None:
                    usage = chunk.usage
                if chunk.finish_reason is not None:
                    finish = chunk.finish_reason
        model = request.model if source is self.providers[0] and request.model else source.model
        return ChatResult(
            text="".join(parts), model=model, usage=usage, finish_reason=finish, chunks=parts
        )

    async def aclose(self) -> None:
        """Close every provider of the chain (all of them, even if one fails to close)."""
        failures: list[BaseException] = []
        for provider in self.providers:
            try:
                await provider.aclose()
            except Exception as exc:  # pragma: no cover - defensive
                failures.append(exc)
        if failures:
            raise failures[0]


def _describe(errors: Sequence[tuple[LLMProvider, LLMError]]) -> str:
    return "; ".join(f"{p.name}/{p.model}: {e.code}" for p, e in errors)


async def _tag(
    provider: LLMProvider, request: ChatRequest
) -> AsyncIterator[tuple[LLMProvider, ChatChunk]]:
    async with _closing(provider.stream(request)) as chunks:
        async for chunk in chunks:
            yield provider, chunk


def stream_with_source(
    provider: LLMProvider, request: ChatRequest
) -> AsyncIterator[tuple[LLMProvider, ChatChunk]]:
    """Stream `request` from any provider, pairing each chunk with the provider that answered.

    For a `FallbackProvider` that is the chain member that took the call; for
    any other provider it is the provider itself. Read `.name` and `.model` of
    it to record who answered.
    """
    if isinstance(provider, FallbackProvider):
        return provider.stream_with_source(request)
    return _tag(provider, request)
