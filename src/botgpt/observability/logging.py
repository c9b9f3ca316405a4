"""JSON logs carrying the request id of the request being served."""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

import orjson

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured duplicate of the message
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        """Render a record as JSON."""
        data: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid is not None:
            data["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


# Credentials some clients must put in URLs (WebSocket `?token=`): never written to a log.
_URL_SECRET = re.compile(r"(?i)([?&](?:token|access_token|api_key|key)=)[^&\s\"']+")
_SERVER_LOGGERS = ("uvicorn.error", "uvicorn.access")


def redact_url_secrets(text: str) -> str:
    """`text` with the values of credential query parameters replaced by `[redacted]`."""
    return _URL_SECRET.sub(r"\1[redacted]", text)


class RedactUrlSecrets(logging.Filter):
    """Rewrites a record whose message carries a credential in a URL query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact in place; never drops the record."""
        message = record.getMessage()
        redacted = redact_url_secrets(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
            record.__dict__.pop("color_message", None)
        return True


def protect_server_logs() -> None:
    """Redact URL credentials in the server's own lines (uvicorn logs WebSocket paths whole)."""
    for name in _SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactUrlSecrets) for f in logger.filters):
            logger.addFilter(RedactUrlSecrets())


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    """Send all logs to stderr, as JSON or as readable text."""
    handler = logging.StreamHandler(sys.stderr)
    if json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.addFilter(_RequestIdFilter())
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    handler.addFilter(RedactUrlSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "httpx", "aiosqlite", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
