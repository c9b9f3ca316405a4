"""OpenAPI documentation of error responses."""

from __future__ import annotations

from typing import Any

from botgpt.errors import ErrorResponse

_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing, invalid, expired or revoked credentials",
    403: "Not allowed",
    404: "Not found (or owned by someone else)",
    409: "Conflict with the current state",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Validation error",
    429: "Rate limited",
    502: "The language model failed",
    503: "A dependency is unavailable",
    504: "The language model timed out",
}


def errors_doc(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry documenting these error statuses with the error envelope."""
    return {c: {"model": ErrorResponse, "description": _DESCRIPTIONS[c]} for c in codes}
