"""The one place that maps domain and provider errors to HTTP responses."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from botgpt import exceptions as exc
from botgpt.llm import errors as llm_errors
from botgpt.text import NO_NUL_PATTERN, NUL_MESSAGE

log = logging.getLogger("botgpt.errors")

_STATUS: dict[type[exc.DomainError], int] = {
    exc.MalformedRequest: 400,
    exc.NotFound: 404,
    exc.AuthenticationFailed: 401,
    exc.PermissionDenied: 403,
    exc.Conflict: 409,
    exc.InvalidInput: 422,
    exc.PayloadTooLarge: 413,
    exc.UnsupportedMediaType: 415,
    exc.RateLimited: 429,
    exc.ServiceUnavailable: 503,
}

_LLM_STATUS: dict[type[llm_errors.LLMError], int] = {
    llm_errors.ProviderTimeout: 504,
    llm_errors.CircuitOpen: 503,
    llm_errors.ProviderRateLimited: 503,
    llm_errors.ProviderUnavailable: 503,
}


class ErrorBody(BaseModel):
    """The error object inside every 4xx/5xx response."""

    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """The envelope of every 4xx/5xx response."""

    error: ErrorBody


def error_json(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """Build the standard error response."""
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


def status_for_domain(error: exc.DomainError) -> int:
    """The HTTP status of a domain error."""
    for cls in type(error).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 400


def status_for_llm(error: llm_errors.LLMError) -> int:
    """The HTTP status of a provider error: 504 timeout, 503 unavailable, else 502."""
    for cls in type(error).__mro__:
        if cls in _LLM_STATUS:
            return _LLM_STATUS[cls]
    return 502


def llm_error_payload(error: llm_errors.LLMError) -> dict[str, Any]:
    """A client-safe description of a provider failure."""
    return dict(llm_errors.client_error(error))


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


_FASTAPI_UNPARSABLE_BODY = "There was an error parsing the body"
# PostgreSQL's "character not in repertoire" (e.g. U+0000 in a text value).
_PG_UNTRANSLATABLE_CHARACTER = "22021"


def _sqlstate(error: DBAPIError) -> str | None:
    orig = error.orig
    code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
    return code if isinstance(code, str) else None


def _error_message(error: Mapping[str, Any]) -> str:
    """A validation error's message; the NUL rule of `botgpt.text.Text` said plainly."""
    ctx = error.get("ctx") or {}
    if isinstance(ctx, Mapping) and ctx.get("pattern") == NO_NUL_PATTERN:
        return NUL_MESSAGE
    return str(error.get("msg", ""))


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the error envelope."""

    @app.exception_handler(exc.DomainError)
    async def _domain(_: Request, error: exc.DomainError) -> JSONResponse:
        headers = None
        if isinstance(error, exc.RateLimited) and error.retry_after is not None:
            headers = {"Retry-After": str(max(1, round(error.retry_after)))}
        if isinstance(error, exc.AuthenticationFailed):
            headers = {"WWW-Authenticate": "Bearer"}
        return error_json(
            status_for_domain(error), error.code, error.message, error.details, headers
        )

    @app.exception_handler(exc.ProviderFailed)
    async def _turn(_: Request, error: exc.ProviderFailed) -> JSONResponse:
        cause = error.cause
        if isinstance(cause, llm_errors.LLMError):
            payload = llm_error_payload(cause)
            return error_json(
                status_for_llm(cause), payload["code"], payload["message"], error.details
            )
        return error_json(502, error.code, error.message, error.details)

    @app.exception_handler(llm_errors.LLMError)
    async def _llm(_: Request, error: llm_errors.LLMError) -> JSONResponse:
        payload = llm_error_payload(error)
        return error_json(status_for_llm(error), payload["code"], payload["message"])

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, error: RequestValidationError) -> JSONResponse:
        if any(e.get("type") == "json_invalid" for e in error.errors()):
            # Not JSON at all is a malformed request (400); JSON of the wrong shape is a 422.
            return error_json(400, "invalid_json", "The request body is not valid JSON.")
        details = [
            {"loc": list(e.get("loc", ())), "msg": _error_message(e), "type": e.get("type", "")}
            for e in error.errors()
        ]
        return error_json(422, "validation_error", "The request is invalid.", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400 and error.detail == _FASTAPI_UNPARSABLE_BODY:
            # Bytes that are not even text (FastAPI's own 400): the same answer as broken JSON.
            return error_json(400, "invalid_json", "The request body is not valid JSON.")
        code = _HTTP_CODES.get(error.status_code, "error")
        message = error.detail if isinstance(error.detail, str) else "Request failed."
        return error_json(error.status_code, code, message, headers=error.headers)

    @app.exception_handler(DBAPIError)
    async def _database(_: Request, error: DBAPIError) -> JSONResponse:
        if _sqlstate(error) == _PG_UNTRANSLATABLE_CHARACTER:
            # A backstop behind the schemas' `Text` type: PostgreSQL refuses NUL in text.
            return error_json(
                422, "validation_error", "A text field contains a NUL character (\\u0000)."
            )
        log.exception("database error", exc_info=error)
        return error_json(500, "internal_error", "An internal error occurred.")

    @app.exception_handler(Exception)
    async def _unhandled(_: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=error)
        return error_json(500, "internal_error", "An internal error occurred.")
