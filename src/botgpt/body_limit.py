"""Request body limit, enforced while the body is read (Content-Length or not).

A body whose Content-Length is over the limit is refused before any of it is read; a body
without one (chunked) is counted as it arrives and refused as soon as it passes the limit,
so an endless body costs at most the limit in memory. Both answer 413 with the error
envelope. Routes that stream bodies with their own limit (uploads) get a higher ceiling.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from botgpt.errors import error_json


class BodyTooLarge(HTTPException):
    """Raised from `receive` once the body passes the limit; answered as 413 by errors.py."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _message(limit))


def _message(limit: int) -> str:
    return f"The request body is larger than the limit of {limit / (1024 * 1024):g} MB."


class BodyLimitMiddleware:
    """Refuse request bodies above `default` bytes (or the route's entry in `routes`)."""

    def __init__(
        self, app: ASGIApp, default: int, routes: Mapping[tuple[str, str], int] | None = None
    ) -> None:
        self.app = app
        self.default = default
        self.routes = dict(routes or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request with its body counted."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.routes.get((scope["method"], scope["path"]), self.default)
        length = _content_length(scope)
        if length is not None and length > limit:
            response = error_json(413, "payload_too_large", _message(limit), {"max_bytes": limit})
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
