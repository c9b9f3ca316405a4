"""Hostile documents: bombs, endless pages and nesting fail fast with a clear reason, and a
parse can be stopped (time budget, memory ceiling, deleting the document)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from botgpt.documents.errors import ParseError
from botgpt.documents.limits import LimitExceededError, ParseLimits
from botgpt.documents.parsing import parse_document
from botgpt.documents.sandbox import ParseBudget, ParseCancelled, parse_bounded
from tests.conftest import AppCtx, AuthedUser
from tests.documents import hostile, samples
from tests.documents.conftest import Docs

# Every limit but the one under test lifted, so each test shows that one limit holding.
LIFTED = ParseLimits(
    max_pages=10**9,
    max_paragraphs=10**9,
    max_chars=10**12,
    max_unpacked_bytes=10**12,
    max_compression_ratio=1e12,
    max_html_depth=10**9,
)


@pytest.fixture(scope="module")
def docx_bomb() -> bytes:
    """About 190 KB that unzip to 52 MB: a million empty paragraphs."""
    return hostile.docx_bomb()


def _code(data: bytes, name: str, limits: ParseLimits) -> str:
    with pytest.raises(ParseError) as caught:
        parse_document(data, name, limits)
    assert caught.value.message  # every refusal tells the user what happened
    return caught.value.code


# --------------------------------------------------------------------------- the limits


def test_docx_bomb_is_refused_from_its_compression_ratio(docx_bomb: bytes) -> None:
    assert len(docx_bomb) < 300_000
    assert _code(docx_bomb, "report.docx", ParseLimits()) == "compression_bomb"


def test_docx_bomb_is_refused_from_its_unpacked_size(docx_bomb: bytes) -> None:
    limits = ParseLimits(
        max_unpacked_bytes=10 * 1024 * 1024, max_compression_ratio=1e12, max_paragraphs=10**9
    )
    assert _code(docx_bomb, "report.docx", limits) == "archive_too_large"


def test_docx_paragraph_limit_counts_empty_paragraphs() -> None:
    data = hostile.docx_bomb(5000)
    limits = ParseLimits(max_paragraphs=1000)
    assert _code(data, "report.docx", limits) == "too_many_paragraphs"
    # Within the limit the same document parses (its one real paragraph and heading).
    doc = parse_document(data, "report.docx", ParseLimits(max_paragraphs=10_000))
    assert "Revenue grew." in doc.full_text and doc.headings[0].text == "Quarterly report"


def test_pdf_bomb_is_refused() -> None:
    data = hostile.pdf_bomb(100)
    assert len(data) < 200_000
    assert _code(data, "bomb.pdf", LIFTED) == "compression_bomb"


def test_pdf_page_count_is_limited() -> None:
    data = samples.make_pdf([f"Page {i} of the manual." for i in range(8)])
    assert _code(data, "manual.pdf", ParseLimits(max_pages=5)) == "too_many_pages"
    assert len(parse_document(data, "manual.pdf", ParseLimits(max_pages=8)).pages) == 8


def test_html_nesting_depth_is_limited() -> None:
    assert _code(hostile.deep_html(5000), "deep.html", ParseLimits()) == "nesting_too_deep"
    doc = parse_document(hostile.deep_html(100), "deep.html", ParseLimits())
    assert doc.full_text == "Deep down there is one sentence."


def test_text_length_is_limited() -> None:
    data = b"All work and no play makes Jack a dull boy.\n" * 1000
    assert _code(data, "jack.txt", ParseLimits(max_chars=10_000)) == "too_much_text"
    assert _code(samples.HTML, "page.html", ParseLimits(max_chars=1000, max_paragraphs=2)) in (
        "too_many_paragraphs",
        "too_much_text",
    )


# --------------------------------------------------------------------------- stoppable parsing


async def _never() -> bool:
    return False


def _parser_children() -> set[int]:
    """Live parser processes started by this process."""
    found = set()
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        if b"botgpt.documents.parse_worker" in cmdline and ppid == me:
            found.add(int(entry.name))
    return found


async def test_time_budget_kills_the_parser(docx_bomb: bytes) -> None:
    others = _parser_children()  # the app's job queue may be parsing something meanwhile
    with pytest.raises(LimitExceededError) as caught:
        await parse_bounded(docx_bomb, "report.docx", ParseBudget(LIFTED, 1.5, 4096), _never)
    assert caught.value.code == "parse_timeout"
    assert "1.5 seconds" in caught.value.message
    assert _parser_children() <= others


async def test_memory_ceiling_stops_the_parser(docx_bomb: bytes) -> None:
    others = _parser_children()
    with pytest.raises(LimitExceededError) as caught:
        await parse_bounded(docx_bomb, "report.docx", ParseBudget(LIFTED, 120, 256), _never)
    assert caught.value.code == "parse_out_of_memory"
    assert _parser_children() <= others


async def test_cancel_kills_the_parser(docx_bomb: bytes) -> None:
    stop = asyncio.Event()

    async def cancelled() -> bool:
        return stop.is_set()

    others = _parser_children()
    task = asyncio.create_task(
        parse_bounded(docx_bomb, "report.docx", ParseBudget(LIFTED, 600, 4096), cancelled)
    )
    deadline = time.monotonic() + 30
    while not _parser_children() - others:
        assert time.monotonic() < deadline, "the parser never started"
        await asyncio.sleep(0.05)
    ours = _parser_children() - others
    stop.set()
    with pytest.raises(ParseCancelled):
        await task
    assert not ours & _parser_children()


async def test_parsed_in_a_child_equals_parsed_here() -> None:
    for name, data in [
        ("a.pdf", samples.make_pdf(["First page text.", "Second page text."])),
        ("a.docx", samples.make_docx("Orchard", ["Apples need cold winters."])),
        ("a.html", samples.HTML),
    ]:
        here = parse_document(data, name)
        there = await parse_bounded(data, name, ParseBudget(ParseLimits(), 60, 1024), _never)
        assert there == here, name


# --------------------------------------------------------------------------- through the API


async def test_uploaded_docx_bomb_fails_with_a_clear_reason(
    docs: Docs, user: AuthedUser, docx_bomb: bytes
) -> None:
    r = await docs.upload(user, "report.docx", docx_bomb)
    assert r.status_code == 201, r.text
    done = await docs.wait(user, r.json()["id"], seconds=30)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "compression_bomb"
    assert "bomb" in done["error"]["message"]
    assert done["chunk_count"] == 0


async def test_deleting_a_document_stops_its_parse(
    docs: Docs, user: AuthedUser, ctx: AppCtx, docx_bomb: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Limits lifted so the bomb reaches the parser, which would take minutes on it.
    for name, value in [
        ("parse_max_compression_ratio", 1e12),
        ("parse_max_unpacked_mb", 1e6),
        ("parse_max_paragraphs", 10**9),
        ("parse_max_memory_mb", 4096),
        ("parse_timeout_seconds", 600.0),
    ]:
        monkeypatch.setattr(ctx.settings, name, value)
    others = _parser_children()
    r = await docs.upload(user, "slow.docx", docx_bomb)
    assert r.status_code == 201, r.text
    doc_id = r.json()["id"]
    deadline = time.monotonic() + 60
    while not _parser_children() - others:
        assert time.monotonic() < deadline, "the parser never started"
        await asyncio.sleep(0.05)
    ours = _parser_children() - others
    r = await docs.client.delete(f"/api/v1/documents/{doc_id}", headers=user.headers)
    assert r.status_code == 204
    deadline = time.monotonic() + 15  # the job would otherwise run for minutes
    while docs.ingestor.busy(doc_id) or ours & _parser_children():
        assert time.monotonic() < deadline, "deleting the document did not stop its parse"
        await asyncio.sleep(0.05)
    assert await docs.scalar("SELECT COUNT(*) FROM documents WHERE id = :d", d=doc_id) == 0
    assert await docs.scalar("SELECT COUNT(*) FROM chunks WHERE document_id = :d", d=doc_id) == 0


def test_the_parser_process_gets_no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from botgpt.documents.sandbox import _child_environment

    monkeypatch.setenv("BOTGPT_LLM_API_KEY", "sk-never-for-parsers")
    env = _child_environment()
    assert not [k for k in env if k.startswith("BOTGPT_")]
    assert env.get("PATH") == os.environ.get("PATH")
