"""Parsing that can be stopped: PDF, DOCX and HTML are parsed in a child process.

A parser stuck in a pathological file cannot be interrupted inside a thread, so those three
formats are parsed by ``python -m botgpt.documents.parse_worker``, which caps its own memory
(RLIMIT_AS) and is killed when its time budget runs out or when ``cancelled()`` says the
document is gone (deleted, or taken over by another run). Plain text and Markdown are parsed
in a thread: their parsing is a linear scan, bounded by the upload and character limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from botgpt.documents.errors import ParseError
from botgpt.documents.limits import LimitExceededError, ParseLimits
from botgpt.documents.parse_worker import OUT_OF_MEMORY, header_for
from botgpt.documents.parsing import (
    DOCX,
    HTML,
    PAGE_SEPARATOR,
    PDF,
    Heading,
    ParsedDocument,
    ParsedPage,
    detect_type,
    parse_document,
)

log = logging.getLogger("botgpt.parsing")

ISOLATED_TYPES = frozenset((PDF, DOCX, HTML))
POLL_SECONDS = 1.0


class ParseCancelled(Exception):
    """The document went away while it was being parsed; the child was stopped."""


@dataclass(frozen=True, slots=True)
class ParseBudget:
    """What one parse may spend: limits on the document, time and memory of the child."""

    limits: ParseLimits
    timeout_seconds: float
    memory_mb: int


def _timed_out(seconds: float) -> LimitExceededError:
    return LimitExceededError(
        "parse_timeout",
        f"Reading this document took longer than {seconds:g} seconds and was stopped. It may be "
        "very large or unusually complex: split it or save it in a simpler form, and upload "
        "it again.",
    )


def _out_of_memory(megabytes: int) -> LimitExceededError:
    return LimitExceededError(
        OUT_OF_MEMORY,
        f"Reading this document needed more than {megabytes} MB of memory and was stopped. "
        "Split it or save it in a simpler form, and upload it again.",
    )


def _crashed() -> ParseError:
    error = ParseError(
        "The document could not be read: the parser stopped unexpectedly. Re-export the file "
        "(e.g. 'Save as' in its application) and upload it again."
    )
    error.code = "parse_failed"
    return error


async def parse_bounded(
    data: bytes,
    filename: str,
    budget: ParseBudget,
    cancelled: Callable[[], Awaitable[bool]],
) -> ParsedDocument:
    """Parse within `budget`; raises ParseError (incl. limits) or ParseCancelled."""
    if detect_type(data, filename) not in ISOLATED_TYPES:
        return await asyncio.to_thread(parse_document, data, filename, budget.limits)
    return await _parse_in_child(data, filename, budget, cancelled)


async def _parse_in_child(
    data: bytes,
    filename: str,
    budget: ParseBudget,
    cancelled: Callable[[], Awaitable[bool]],
) -> ParsedDocument:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "botgpt.documents.parse_worker",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_child_environment(),
    )
    request = header_for(filename, budget.limits, budget.memory_mb) + data
    talk = asyncio.ensure_future(child.communicate(request))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget.timeout_seconds
    try:
        while not talk.done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise _timed_out(budget.timeout_seconds)
            await asyncio.wait({talk}, timeout=min(POLL_SECONDS, remaining))
            if not talk.done() and await cancelled():
                raise ParseCancelled
        stdout, stderr = talk.result()
    finally:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()
        if not talk.done():
            talk.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await talk
    return _answer(child.returncode, stdout, stderr, budget)


def _child_environment() -> dict[str, str]:
    # The parser reads untrusted bytes: it gets none of the service's settings (keys, secrets).
    return {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS_PREFIX)}


_SETTINGS_PREFIX = "BOTGPT_"


def _answer(code: int | None, stdout: bytes, stderr: bytes, budget: ParseBudget) -> ParsedDocument:
    try:
        answer: dict[str, Any] = json.loads(stdout) if stdout else {}
    except ValueError:
        answer = {}
    if "ok" in answer:
        return decode(answer["ok"])
    if "error" in answer:
        error = answer["error"]
        if error["code"] == OUT_OF_MEMORY:
            raise _out_of_memory(budget.memory_mb)
        failure = ParseError(str(error["message"]))
        failure.code = str(error["code"])
        raise failure
    if code == -signal.SIGKILL or b"MemoryError" in stderr:
        raise _out_of_memory(budget.memory_mb)
    log.warning(
        "parser process failed",
        extra={"exit_code": code, "stderr": stderr[-2000:].decode("utf-8", "replace")},
    )
    raise _crashed()


def decode(data: dict[str, Any]) -> ParsedDocument:
    """Rebuild the child's `parse_worker.encode` output."""
    pages = [ParsedPage(int(n), str(t), int(s)) for n, t, s in data["pages"]]
    headings = [Heading(int(lv), str(t), int(s), int(e)) for lv, t, s, e in data["headings"]]
    full_text = PAGE_SEPARATOR.join(p.text for p in pages)
    return ParsedDocument(pages, full_text, data["detected_type"], data["title"], headings)
