"""The circuit breaker: stop calling a backend that keeps failing, then probe it.

`CircuitBreaker` is the per-provider state machine (closed, open, half-open)
and `BreakerPermit` the leave to make one call through it; `BreakerProvider`
wraps an `LLMProvider` with a breaker, failing fast with `CircuitOpen` while it
is open. `counts_as_failure` decides which `LLMError`s say the backend is
unhealthy. `Clock` is the type of the injectable monotonic clock used by tests.
See `botgpt.llm.resilience` for how the breaker composes with retries and the
fallback chain.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import AsyncIterator, Callable

from botgpt.llm.base import ChatChunk, ChatRequest, LLMProvider
from botgpt.llm.errors import CircuitOpen, LLMError, ProviderBadResponse
from botgpt.llm.wrapping import closing_stream, copy_capabilities

__all__ = [
    "BreakerPermit",
    "BreakerProvider",
    "BreakerState",
    "CircuitBreaker",
    "Clock",
    "counts_as_failure",
]

log = logging.getLogger("botgpt.llm")

Clock = Callable[[], float]


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
    called). A half-open breaker's trial succeeds at its first token (so the
    breaker is half-open only until the backend answers, not for a whole reply;
    meanwhile other calls get `CircuitOpen`, which a fallback chain passes on to
    its next provider). Otherwise a stream that ends normally is a success; an `LLMError` for which
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
        copy_capabilities(self, inner)
        self.breaker = breaker or CircuitBreaker(
            inner.name, failure_threshold, reset_timeout, clock=clock
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Stream from the inner provider unless the breaker is open; record the outcome."""
        permit = self.breaker.acquire()
        received = False
        try:
            async with closing_stream(self.inner.stream(request)) as chunks:
                async for chunk in chunks:
                    if permit.trial is not None and chunk.delta:
                        # A trial is judged at its first token, not at the end of a long
                        # reply: the breaker closes now and other calls pass again. The
                        # rest of the reply counts like any call of a closed breaker.
                        permit.success()
                        permit = BreakerPermit(self.breaker, None)
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


def breaker_states(provider: LLMProvider) -> list[tuple[str, str, BreakerState]]:
    """(name, model, breaker state) of every breaker-guarded provider in a wrapped chain."""
    found: list[tuple[str, str, BreakerState]] = []
    pending = [provider]
    while pending:
        current = pending.pop(0)
        if isinstance(current, BreakerProvider):
            found.append((current.inner.name, current.inner.model, current.breaker.state))
            continue
        # Wrappers expose what they wrap as `inner`, a fallback chain as `providers`.
        members: list[LLMProvider] = list(getattr(current, "providers", ()))
        inner = getattr(current, "inner", None)
        if isinstance(inner, LLMProvider):
            members.append(inner)
        pending.extend(members)
    return found
