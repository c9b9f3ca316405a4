"""Turn uploaded bytes into plain text with page numbers and character offsets.

``parse_document`` is the single entry point: it sniffs the real type from the content (not
only the file name), extracts text per page, and returns a ``ParsedDocument`` whose
``full_text`` is the pages joined by a blank line, so that any character span of the text
maps back to a page (``ParsedDocument.page_for_offset``). Headings (Markdown ``#``, HTML
``h1``-``h6``, Word heading styles) are reported as spans so the chunker can split on them.
Failures raise a ``ParseError`` subclass carrying a stable ``code`` and a message a user can
act on.
"""

from __future__ import annotations

import bisect
import io
import logging
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from botgpt.documents.errors import (
    CorruptDocumentError,
    EmptyDocumentError,
    EncryptedDocumentError,
    NoExtractableTextError,
    ParseError,
    UndecodableTextError,
    UnsupportedTypeError,
)
from botgpt.documents.limits import (
    LimitExceededError,
    ParseLimits,
    check_archive,
    nesting_too_deep,
    too_many_pages,
    too_many_paragraphs,
    too_much_text,
)

PDF = "pdf"
DOCX = "docx"
HTML = "html"
MARKDOWN = "markdown"
TEXT = "text"
SUPPORTED_TYPES = (PDF, DOCX, HTML, MARKDOWN, TEXT)

# Pages (and HTML/DOCX blocks) are joined by a blank line so they are paragraph boundaries.
PAGE_SEPARATOR = "\n\n"


@dataclass(frozen=True, slots=True)
class ParsedPage:
    """One page; ``start_offset`` is where its text begins in ``ParsedDocument.full_text``."""

    number: int
    text: str
    start_offset: int

    @property
    def end_offset(self) -> int:
        """Offset one past the page's last character in the full text."""
        return self.start_offset + len(self.text)


@dataclass(frozen=True, slots=True)
class Heading:
    """A heading found in the document; ``start``/``end`` are offsets into the full text."""

    level: int
    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """Extracted text of a document, split in pages, with headings where the format has them."""

    pages: list[ParsedPage]
    full_text: str
    detected_type: str
    title: str | None = None
    headings: list[Heading] = field(default_factory=list)

    def page_for_offset(self, offset: int) -> int:
        """Page number holding the character at ``offset`` of ``full_text``."""
        starts = [p.start_offset for p in self.pages]
        index = max(bisect.bisect_right(starts, offset) - 1, 0)
        return self.pages[index].number


# --------------------------------------------------------------------------- detection

_HTML_HINT = re.compile(r"<(head|body|div|p|h[1-6]|table|article|section|ul)\b[^>]*>")
_HTML_SUFFIXES = (".html", ".htm", ".xhtml")
_MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd")
_TEXT_SUFFIXES = (".txt", ".text", ".csv", ".log", *_MARKDOWN_SUFFIXES)
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def detect_type(data: bytes, filename: str = "") -> str | None:
    """Sniff the type from the content (the extension only refines text); None if unsupported."""
    if b"%PDF-" in data[:1024]:  # the PDF spec allows junk before the header
        return PDF
    if data.startswith(b"PK\x03\x04"):
        return DOCX if _is_docx(data) else None
    head = data[:4096]
    if _looks_binary(head):
        return None
    suffix = PurePath(filename).suffix.lower()
    sample = head.decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n").lower()
    if sample.startswith(("<!doctype html", "<html")):
        return HTML
    if suffix in _HTML_SUFFIXES and "<" in sample:
        return HTML
    if suffix not in _TEXT_SUFFIXES and _HTML_HINT.search(sample):
        return HTML
    return MARKDOWN if suffix in _MARKDOWN_SUFFIXES else TEXT


def _is_docx(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        # A truncated .docx still starts with PK; let the DOCX parser report it as corrupt.
        return b"word/document.xml" in data or b"[Content_Types].xml" in data


def _looks_binary(head: bytes) -> bool:
    if any(head.startswith(bom) for bom, _ in _BOMS):
        return False  # UTF-16/32 text legitimately contains NUL bytes
    if b"\x00" in head:
        return True
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13, 27))
    return bool(head) and controls / len(head) > 0.05


# --------------------------------------------------------------------------- entry point


def parse_document(
    data: bytes, filename: str = "", limits: ParseLimits | None = None
) -> ParsedDocument:
    """Parse ``data`` into pages of text; raises a ``ParseError`` subclass on failure.

    ``limits`` bound what the document may expand to (pages, paragraphs, characters, archive
    size and compression ratio, HTML depth); exceeding one raises ``LimitExceededError``.
    """
    limits = limits or ParseLimits()
    kind = detect_type(data, filename)
    if kind is None:
        raise UnsupportedTypeError(
            "This file type is not supported. Upload a PDF, Word (.docx), HTML, Markdown or "
            "plain-text file."
        )
    if kind == PDF:
        doc = _parse_pdf(data, limits)
    elif kind == DOCX:
        check_archive(data, limits)  # before any XML is unpacked
        doc = _parse_docx(data, limits)
    elif kind == HTML:
        doc = _parse_html(_decode_text(data), limits)
    else:
        text = _normalise(_decode_text(data))
        if len(text) > limits.max_chars:
            raise too_much_text(limits.max_chars)
        headings = _markdown_headings(text) if kind == MARKDOWN else []
        doc = _single_page(text, kind, headings, headings[0].text if headings else None)
    if not doc.full_text.strip():
        raise EmptyDocumentError(
            "The document contains no text. Check that you uploaded the right file."
        )
    return doc


def _single_page(
    text: str, kind: str, headings: list[Heading], title: str | None
) -> ParsedDocument:
    return ParsedDocument([ParsedPage(1, text, 0)], text, kind, title, headings)


_WHITESPACE = re.compile(r"\s+")
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")


def _normalise(text: str) -> str:
    """Unify newlines, drop NULs (PostgreSQL rejects them) and trailing spaces."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    lines = [line.rstrip() for line in text.split("\n")]
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip("\n")


def _decode_text(data: bytes) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise _undecodable(exc) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _undecodable(exc) from exc


def _undecodable(exc: UnicodeDecodeError) -> UndecodableTextError:
    return UndecodableTextError(
        f"The file is not valid UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
        f"{exc.start}). Save it with UTF-8 encoding and upload it again."
    )


_MD_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def _markdown_headings(text: str) -> list[Heading]:
    # A '#' line inside a fenced code block is code, not a heading.
    fences = [m.start() for m in re.finditer(r"^(```|~~~)", text, re.MULTILINE)]
    headings = []
    for m in _MD_HEADING.finditer(text):
        if bisect.bisect_right(fences, m.start()) % 2 == 1:
            continue
        headings.append(Heading(len(m.group(1)), m.group(2).strip(), m.start(), m.end()))
    return headings


# --------------------------------------------------------------------------- PDF


def _parse_pdf(data: bytes, limits: ParseLimits) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError

    # pypdf logs every recoverable oddity of real-world PDFs as a warning; keep logs readable.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            # Many PDFs are encrypted only with an owner password (printing/copy limits) and open
            # with an empty user password; only ask the user when that fails.
            try:
                opened = reader.decrypt("")
            except DependencyError as exc:
                raise EncryptedDocumentError(
                    "This PDF uses an encryption the server cannot open. Save an unencrypted copy "
                    "and upload that."
                ) from exc
            if not opened:
                raise EncryptedDocumentError(
                    "This PDF is password protected. Remove the password (print or save an "
                    "unprotected copy) and upload it again."
                )
        count = len(reader.pages)
        if count > limits.max_pages:
            raise too_many_pages(count, limits.max_pages)
        raw_pages: list[str] = []
        chars = 0
        for page in reader.pages:
            raw_pages.append(page.extract_text() or "")
            chars += len(raw_pages[-1])
            if chars > limits.max_chars:
                raise too_much_text(limits.max_chars)
    except ParseError:
        raise
    except LimitReachedError as exc:
        # pypdf's own bound on what one stream may inflate to: a PDF bomb.
        raise LimitExceededError(
            "compression_bomb",
            "A stream of this PDF inflates to more than the server accepts: it looks like a "
            "decompression bomb rather than a real document.",
        ) from exc
    except FileNotDecryptedError as exc:
        raise EncryptedDocumentError(
            "This PDF is password protected. Remove the password and upload it again."
        ) from exc
    except Exception as exc:  # pypdf raises many unrelated types on malformed input
        if _memory_failure(exc):
            raise MemoryError from exc
        raise CorruptDocumentError(
            "The PDF is damaged or incomplete and could not be read. Re-export or re-download "
            "it and upload it again."
        ) from exc
    if not raw_pages:
        raise EmptyDocumentError("The PDF has no pages.")
    texts = [_normalise(_dehyphenate(t)) for t in raw_pages]
    if not any(t.strip() for t in texts):
        raise NoExtractableTextError(
            "No text could be extracted from this PDF: it looks like a scan or contains only "
            "images. Run it through OCR (e.g. 'Save as searchable PDF') and upload it again."
        )
    return _join_pages(texts, PDF, title=_pdf_title(reader))


def _pdf_title(reader: Any) -> str | None:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:  # metadata of broken files may fail in many ways; it is optional
        return None
    if not title:
        return None
    return str(title).strip() or None


_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")


def _dehyphenate(text: str) -> str:
    # "retrie-\nval" is one word split by the layout; joining it helps search match it.
    return _HYPHEN_BREAK.sub(r"\1\2", text)


def _join_pages(texts: list[str], kind: str, title: str | None = None) -> ParsedDocument:
    pages: list[ParsedPage] = []
    offset = 0
    for number, text in enumerate(texts, start=1):
        pages.append(ParsedPage(number, text, offset))
        offset += len(text) + len(PAGE_SEPARATOR)
    full_text = PAGE_SEPARATOR.join(texts)
    return ParsedDocument(pages, full_text, kind, title)


# --------------------------------------------------------------------------- blocks (HTML, DOCX)


class _BlockWriter:
    """Accumulates paragraphs separated by blank lines and records heading spans."""

    def __init__(self, limits: ParseLimits) -> None:
        self.limits = limits
        self.parts: list[str] = []
        self.length = 0
        self.blocks = 0
        self.headings: list[Heading] = []

    def add(self, text: str, heading_level: int = 0) -> None:
        text = text.strip()
        if not text:
            return
        self.blocks += 1
        if self.blocks > self.limits.max_paragraphs:
            raise too_many_paragraphs(self.limits.max_paragraphs)
        if self.length + len(text) > self.limits.max_chars:
            raise too_much_text(self.limits.max_chars)
        if self.parts:
            self.parts.append("\n\n")
            self.length += 2
        if heading_level:
            self.headings.append(Heading(heading_level, text, self.length, self.length + len(text)))
        self.parts.append(text)
        self.length += len(text)

    def document(self, kind: str, title: str | None) -> ParsedDocument:
        text = "".join(self.parts)
        if title is None and self.headings:
            title = self.headings[0].text
        return ParsedDocument([ParsedPage(1, text, 0)], text, kind, title, self.headings)


_DROP_TAGS = ("script", "style", "noscript", "template", "svg", "iframe", "object", "head")
# fmt: off
_BLOCK_TAGS = frozenset((
    "p", "div", "section", "article", "main", "header", "footer", "aside", "nav", "li", "ul",
    "ol", "dl", "dt", "dd", "table", "tr", "thead", "tbody", "tfoot", "caption", "blockquote",
    "pre", "figure", "figcaption", "form", "fieldset", "address", "details", "summary", "hr",
    "h1", "h2", "h3", "h4", "h5", "h6", "body", "html", "title",
))
# fmt: on
_CELL_TAGS = frozenset(("td", "th"))


def _parse_html(markup: str, limits: ParseLimits) -> ParsedDocument:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(markup)
    title_node = tree.css_first("title")
    title = _collapse(title_node.text()) if title_node is not None else None
    tree.strip_tags(list(_DROP_TAGS))
    writer = _BlockWriter(limits)
    root = tree.body or tree.root
    if root is not None:
        _walk_html(root, writer, limits.max_html_depth)
    return writer.document(HTML, title or None)


def _walk_html(root: Any, writer: _BlockWriter, max_depth: int) -> None:
    """Depth-first walk without recursion, refusing nesting deeper than ``max_depth``."""
    buffer: list[str] = []
    pre_depth = 0

    def flush(level: int = 0) -> None:
        text = "".join(buffer)
        buffer.clear()
        writer.add(text if pre_depth else _collapse(text), level)

    stack: list[tuple[Any, bool, int]] = [(root, False, 0)]
    while stack:
        node, leaving, depth = stack.pop()
        if depth > max_depth:
            raise nesting_too_deep(max_depth)
        tag = node.tag
        if leaving:
            level = int(tag[1]) if len(tag) == 2 and tag[0] == "h" and tag[1].isdigit() else 0
            flush(level)
            if tag == "pre":
                pre_depth -= 1
            continue
        if tag == "-text":
            raw = node.text_content or ""
            # Outside <pre>, source newlines are just whitespace; only <br> breaks a line.
            buffer.append(raw if pre_depth else _WHITESPACE.sub(" ", raw))
            continue
        if tag == "br":
            buffer.append("\n")
            continue
        if tag in _CELL_TAGS:
            buffer.append(" | " if buffer and "".join(buffer).strip() else "")
        if tag in _BLOCK_TAGS:
            flush()
            stack.append((node, True, depth))
            if tag == "pre":
                pre_depth += 1
        children = []
        child = node.child
        while child is not None:
            children.append(child)
            child = child.next
        stack.extend((c, False, depth + 1) for c in reversed(children))
    flush()


def _collapse(text: str) -> str:
    lines = [_SPACES.sub(" ", line).strip() for line in text.replace("\r", "").split("\n")]
    return "\n".join(line for line in lines if line)


def _parse_docx(data: bytes, limits: ParseLimits) -> ParsedDocument:
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise CorruptDocumentError(
            "The Word document is damaged or incomplete and could not be read. Open it in Word "
            "or LibreOffice, save it again as .docx, and upload it again."
        ) from exc
    except Exception as exc:  # lxml raises its own XMLSyntaxError for broken XML parts
        if _memory_failure(exc):
            raise MemoryError from exc
        raise CorruptDocumentError(
            "The Word document could not be read. Save it again as .docx and upload it again."
        ) from exc
    writer = _BlockWriter(limits)
    body = document.element.body
    if len(body) > limits.max_paragraphs:  # empty paragraphs count: they cost time too
        raise too_many_paragraphs(limits.max_paragraphs)
    # Style names by id, read once: python-docx's per-paragraph lookup scans every style.
    style_names = {s.style_id: s.name or "" for s in document.styles}
    # Walk the body in document order so tables sit between the paragraphs around them.
    for element in body.iterchildren():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(element, document)
            text = paragraph.text
            if text.strip():
                writer.add(text, _docx_heading_level(style_names.get(element.style or "", "")))
        elif tag == "tbl":
            table = Table(element, document)
            for row in table.rows:
                cells = [_collapse(cell.text) for cell in row.cells]
                # Merged cells repeat the same cell object; show their text once.
                unique = [c for i, c in enumerate(cells) if c and (i == 0 or c != cells[i - 1])]
                writer.add(" | ".join(unique))
    title = (document.core_properties.title or "").strip() or None
    return writer.document(DOCX, title)


def _memory_failure(exc: BaseException) -> bool:
    # Under the parser process's memory cap lxml reports "Memory allocation failed" as a
    # syntax error: it is the document's size, not damage, and is reported as such.
    return isinstance(exc, MemoryError) or "Memory allocation failed" in str(exc)


def _docx_heading_level(name: str) -> int:
    if name == "Title":
        return 1
    match = re.match(r"Heading (\d)", name)
    return int(match.group(1)) if match else 0
