"""The one place that maps domain and provider errors to HTTP responses."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from botgpt import exceptions as exc
from botgpt.llm import errors as llm_errors

log = logging.getLogger("botgpt.errors")

_STATUS: dict[type[exc.DomainError], int] = {
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
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in error.errors()
        ]
        return error_json(422, "validation_error", "The request is invalid.", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(error.status_code, "error")
        message = error.detail if isinstance(error.detail, str) else "Request failed."
        return error_json(error.status_code, code, message, headers=error.headers)

    @app.exception_handler(Exception)
    async def _unhandled(_: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=error)
        return error_json(500, "internal_error", "An internal error occurred.")
