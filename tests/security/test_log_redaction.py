"""Credentials in URLs never reach a log line, whichever logger writes the URL."""

from __future__ import annotations

import io
import logging

import pytest

from botgpt.observability.logging import configure_logging, protect_server_logs

SECRET = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


@pytest.mark.parametrize("param", ["token", "api_key", "access_token", "key"])
def test_uvicorn_access_lines_are_redacted(param: str, caplog: pytest.LogCaptureFixture) -> None:
    protect_server_logs()
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    # uvicorn's access line: client, method, path with query, HTTP version, status.
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", f"/x?a=1&{param}={SECRET}&b=2", "1.1", 200
    )
    line = caplog.records[-1].getMessage()
    assert SECRET not in line
    assert f"&{param}=[redacted]&b=2" in line


def test_every_handler_line_is_redacted() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    noisy = {
        n: logging.getLogger(n).level for n in ("uvicorn.access", "httpx", "aiosqlite", "httpcore")
    }
    try:
        configure_logging("INFO", json=True)
        stream = io.StringIO()
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        logging.getLogger("botgpt.any").info("calling %s", f"https://h/p?token={SECRET}")
        assert SECRET not in stream.getvalue() and "token=[redacted]" in stream.getvalue()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        for name, before in noisy.items():
            logging.getLogger(name).setLevel(before)
