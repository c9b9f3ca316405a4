"""Provider errors: what went wrong talking to a model, independent of HTTP."""

from __future__ import annotations


class LLMError(Exception):
    """Base of every provider failure.

    `code` is a stable machine-readable name; `retryable` tells the resilience
    layer whether another attempt may succeed; `retry_after` is the provider's
    requested wait in seconds, when it gave one.
    """

    code = "llm_error"
    retryable = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class ProviderTimeout(LLMError):
    """The provider did not answer in time."""

    code = "provider_timeout"
    retryable = True


class ProviderRateLimited(LLMError):
    """The provider answered 429."""

    code = "provider_rate_limited"
    retryable = True


class ProviderUnavailable(LLMError):
    """The provider is down: 5xx, connection refused or dropped."""

    code = "provider_unavailable"
    retryable = True


class ProviderBadResponse(LLMError):
    """The provider answered something we cannot parse."""

    code = "provider_bad_response"


class ProviderAuthError(LLMError):
    """The provider refused our credentials (401/403)."""

    code = "provider_auth_failed"


class ProviderRequestError(LLMError):
    """The provider refused the request itself (400/404/422), e.g. an unknown model."""

    code = "provider_request_rejected"


class CircuitOpen(LLMError):
    """The circuit breaker for this provider is open; calls are short-circuited."""

    code = "provider_circuit_open"


# What a client may be told about a failure (never the provider's own message, which can
# carry URLs, account details or keys' prefixes).
_CLIENT_MESSAGES = {
    "provider_timeout": "The language model did not answer in time.",
    "provider_rate_limited": "The language model is rate limiting requests; try again shortly.",
    "provider_unavailable": "The language model is unavailable right now.",
    "provider_bad_response": "The language model sent a response that could not be read.",
    "provider_auth_failed": "The language model provider refused the configured credentials.",
    "provider_request_rejected": "The language model provider rejected the request.",
    "provider_circuit_open": "The language model is temporarily disabled after repeated failures.",
}


def client_error(error: LLMError) -> dict[str, str]:
    """A client-safe description of a provider failure: its code and a fixed message."""
    return {"code": error.code, "message": _CLIENT_MESSAGES.get(error.code, "The model failed.")}
