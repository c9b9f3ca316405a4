"""Bounds on what parsing one document may cost: pages, paragraphs, text, archive size, depth.

A small upload can stand for an enormous document (a DOCX of a million empty paragraphs is
187 KB zipped and 50 MB unzipped; a PDF stream can inflate a thousandfold). These limits are
checked before the expensive step where possible (the archive's declared sizes before any
XML is parsed) and while parsing otherwise; the time budget and memory ceiling are enforced
around the parser by `botgpt.documents.sandbox`.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from botgpt.documents.errors import ParseError

MB = 1024 * 1024
# Small members compress extremely well for innocent reasons (repeated XML boilerplate); the
# ratio only says "bomb" once a member inflates to something sizeable.
RATIO_CHECK_FROM_BYTES = 1 * MB
MAX_ARCHIVE_MEMBERS = 10_000


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """What one document may expand to; the defaults are the settings' defaults."""

    max_pages: int = 2000
    max_paragraphs: int = 200_000
    max_chars: int = 10_000_000
    max_unpacked_bytes: int = 100 * MB
    max_compression_ratio: float = 100.0
    max_html_depth: int = 512


class LimitExceededError(ParseError):
    """The document is larger or more complex than this server accepts (one code per limit)."""

    code = "limit_exceeded"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def too_many_pages(count: int, limit: int) -> LimitExceededError:
    """The PDF has more pages than allowed."""
    return LimitExceededError(
        "too_many_pages",
        f"The document has {count} pages; at most {limit} are accepted. Split it into smaller "
        "files and upload them separately.",
    )


def too_many_paragraphs(limit: int) -> LimitExceededError:
    """The document has more paragraphs (or table rows, or HTML blocks) than allowed."""
    return LimitExceededError(
        "too_many_paragraphs",
        f"The document has more than {limit} paragraphs. Split it into smaller files and "
        "upload them separately.",
    )


def too_much_text(limit: int) -> LimitExceededError:
    """The extracted text is longer than allowed."""
    return LimitExceededError(
        "too_much_text",
        f"The document holds more than {limit} characters of text. Split it into smaller "
        "files and upload them separately.",
    )


def nesting_too_deep(limit: int) -> LimitExceededError:
    """The HTML nests elements deeper than allowed."""
    return LimitExceededError(
        "nesting_too_deep",
        f"The HTML nests elements more than {limit} levels deep. Save the page in a simpler "
        "form (e.g. as text) and upload that.",
    )


def check_archive(data: bytes, limits: ParseLimits) -> None:
    """Refuse a ZIP (DOCX) whose members would unpack too large or inflate like a bomb.

    Only the central directory is read: the declared sizes bound what can be unpacked, since
    reading a member stops at its declared size (and a lie fails its CRC check).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not readable as a ZIP: the parser reports it as damaged
    if len(members) > MAX_ARCHIVE_MEMBERS:
        raise LimitExceededError(
            "archive_too_large",
            f"The document is an archive of {len(members)} parts; at most "
            f"{MAX_ARCHIVE_MEMBERS} are accepted.",
        )
    total = sum(m.file_size for m in members)
    if total > limits.max_unpacked_bytes:
        raise LimitExceededError(
            "archive_too_large",
            f"The document unpacks to {total / MB:.0f} MB; at most "
            f"{limits.max_unpacked_bytes / MB:g} MB are accepted. Split it into smaller files "
            "or remove large embedded objects.",
        )
    for member in members:
        if member.file_size < RATIO_CHECK_FROM_BYTES:
            continue
        ratio = member.file_size / max(member.compress_size, 1)
        if ratio > limits.max_compression_ratio:
            raise LimitExceededError(
                "compression_bomb",
                f"The document's part {member.filename[:100]!r} inflates {ratio:.0f}-fold "
                f"(at most {limits.max_compression_ratio:g}-fold is accepted): it looks like a "
                "decompression bomb rather than a real document.",
            )
