"""The resilience layer: retries, a circuit breaker, deadlines and a fallback chain.

Every wrapper of the layer is itself an `LLMProvider`, so they compose. The factory builds,
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

The pieces live in their own modules: `botgpt.llm.retry` (`RetryingProvider`),
`botgpt.llm.breaker` (`CircuitBreaker`, `BreakerProvider`, `counts_as_failure`),
`botgpt.llm.deadline` (`DeadlineProvider`) and `botgpt.llm.fallback`
(`FallbackProvider`, `stream_with_source`). This module re-exports them so
``from botgpt.llm.resilience import ...`` keeps working.
"""

from __future__ import annotations

from botgpt.llm.breaker import (
    BreakerPermit,
    BreakerProvider,
    BreakerState,
    CircuitBreaker,
    Clock,
    breaker_states,
    counts_as_failure,
)
from botgpt.llm.deadline import DeadlineProvider
from botgpt.llm.fallback import FallbackProvider, stream_with_source
from botgpt.llm.retry import RetryingProvider, Sleep

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
    "breaker_states",
    "counts_as_failure",
    "stream_with_source",
]
