"""OpenAPI documentation of error responses."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

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


# One Server-Sent Event as clients (and OpenAPI 3.2 tools) see it: `data` is a JSON text.
SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One Server-Sent Event; `data` holds a JSON object (OpenAI streams end with "
    "`[DONE]`).",
    "required": ["data"],
    "properties": {
        "id": {"type": "string"},
        "event": {"type": "string"},
        "data": {"type": "string"},
    },
}


def errors_doc(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry documenting these error statuses with the error envelope."""
    return {c: {"model": ErrorResponse, "description": _DESCRIPTIONS[c]} for c in codes}


_BODY_ERRORS = (400, 413)


def install_openapi(app: FastAPI) -> None:
    """Document what every route with a request body shares: 400 (unreadable) and 413."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        envelope = {"$ref": "#/components/schemas/ErrorResponse"}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                if "requestBody" not in operation:
                    continue
                responses = operation.setdefault("responses", {})
                for code in _BODY_ERRORS:
                    responses.setdefault(
                        str(code),
                        {
                            "description": _BODY_DESCRIPTIONS[code],
                            "content": {"application/json": {"schema": envelope}},
                        },
                    )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


_BODY_DESCRIPTIONS = {
    400: "The body cannot be read (not JSON, or a truncated multipart body)",
    413: "The body is larger than the limit (BOTGPT_MAX_BODY_MB; uploads BOTGPT_MAX_UPLOAD_MB)",
}
