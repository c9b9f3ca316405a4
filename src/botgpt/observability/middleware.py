"""ASGI middleware: a request id on every request, its log lines and its response.

It also stamps every response with the fixed headers it is given (the security headers),
so one middleware layer, not two, sits in front of every request.
"""

from __future__ import annotations

import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from botgpt.observability import metrics
from botgpt.observability.logging import request_id_var

log = logging.getLogger("botgpt.access")


class RequestContextMiddleware:
    """Takes `X-Request-ID` from the client (or makes one), echoes it, logs the request."""

    def __init__(self, app: ASGIApp, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.app = app
        self.headers = headers or []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request inside its request-id context."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                rid = value.decode("latin-1")[:100]
                break
        rid = rid or uuid.uuid4().hex
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                own = message.get("headers", [])
                message["headers"] = [
                    *own,
                    *(h for h in self.headers if not _framing_decided(h, own)),
                    (b"x-request-id", rid.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            method = scope.get("method", "WS")
            if scope["type"] == "http":
                # The route template, never the raw path: label values must stay few.
                route = getattr(scope.get("route"), "path", "<unmatched>")
                metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
                metrics.HTTP_DURATION.labels(method, route).observe(elapsed)
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    extra={
                        "method": method,
                        "path": scope.get("path"),
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
            request_id_var.reset(token)


def _framing_decided(header: tuple[bytes, bytes], own: list[tuple[bytes, bytes]]) -> bool:
    # A page that says who may frame it (CSP frame-ancestors: the chat page inside a bot's
    # widget) must not also get the blanket X-Frame-Options: DENY, which browsers obey first.
    return header[0] == b"x-frame-options" and any(
        name == b"content-security-policy" and b"frame-ancestors" in value for name, value in own
    )
