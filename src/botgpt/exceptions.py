"""Domain errors: what went wrong in business terms, with no HTTP status attached."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every expected failure; `code` is stable, `message` is safe to show a client."""

    code = "error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    """The resource does not exist, or belongs to someone else."""

    code = "not_found"


class AuthenticationFailed(DomainError):
    """Missing, invalid, expired or revoked credentials."""

    code = "unauthenticated"


class PermissionDenied(DomainError):
    """Authenticated, but not allowed to do this."""

    code = "forbidden"


class Conflict(DomainError):
    """The request conflicts with the current state (duplicate, in progress, not ready)."""

    code = "conflict"


class MalformedRequest(DomainError):
    """The request body cannot be read at all (broken JSON, a truncated multipart body)."""

    code = "malformed_body"


class InvalidInput(DomainError):
    """The request is well-formed JSON but semantically invalid."""

    code = "invalid_input"


class UnsupportedMode(InvalidInput):
    """A conversation mode that cannot be served yet."""

    code = "unsupported_mode"


class PayloadTooLarge(DomainError):
    """The upload exceeds the configured limit."""

    code = "payload_too_large"


class UnsupportedMediaType(DomainError):
    """The upload's content type is not one we can process."""

    code = "unsupported_media_type"


class RateLimited(DomainError):
    """Too many requests for this principal."""

    code = "rate_limited"

    def __init__(
        self, message: str, *, retry_after: float | None = None, details: Any = None
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class ServiceUnavailable(DomainError):
    """A dependency (database, provider) is not available right now."""

    code = "service_unavailable"


class ProviderFailed(DomainError):
    """A chat turn's model call failed for good; the user message is kept.

    `cause` is the provider error (`botgpt.llm.errors.LLMError`); `details` names the
    stored messages so a client can regenerate the turn.
    """

    code = "provider_failed"

    def __init__(self, message: str, *, cause: Exception, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.cause = cause
