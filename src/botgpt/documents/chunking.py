"""Token-aware chunking with overlap that follows the document's structure.

The text is cut into sections at headings, sections into paragraphs at blank lines, and
paragraphs are packed greedily into chunks of at most ``chunk_tokens`` tokens. A paragraph that
is too long on its own is split on sentence ends, and a sentence that is still too long on
word boundaries. Consecutive chunks of one section overlap by up to ``overlap_tokens`` tokens
(whole trailing paragraphs/sentences when they fit, else trailing words); chunks never straddle
a heading. Every chunk is an exact span: ``full_text[char_start:char_end] == chunk.text``.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from botgpt.documents.parsing import Heading, ParsedDocument
from botgpt.retrieval.stores import ChunkRecord

CountTokens = Callable[[str], int]
# (start, end) character offsets of each token of a text, e.g. a ``tokenizers`` encoding's.
TokenOffsets = Callable[[str], Sequence[tuple[int, int]]]

DEFAULT_CHUNK_TOKENS = 256
DEFAULT_OVERLAP_TOKENS = 32

_WORD_OR_PUNCT = re.compile(r"\w+|[^\w\s]")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
# A sentence ends at . ! ? (optionally closed by quotes/brackets) followed by whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_WORD = re.compile(r"\S+")


def approx_token_count(text: str) -> int:
    """Cheap WordPiece-like estimate: one token per punctuation mark, ~1 per 6 word chars."""
    return sum(1 + (len(m) - 1) // 6 for m in _WORD_OR_PUNCT.findall(text))


@dataclass(frozen=True, slots=True)
class Chunk:
    """A contiguous span of the document's full text, ready to embed and index."""

    ordinal: int
    text: str
    page: int
    page_end: int
    char_start: int
    char_end: int
    token_count: int
    heading: str  # heading path above the chunk ("Part 1 > Methods"), "" when there is none
    # (offset in ``text``, page number) of each page that starts inside the chunk, so a
    # citation can name the page of the sentence it quotes rather than the chunk's first.
    page_breaks: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class _Unit:
    start: int
    end: int
    tokens: int


def chunk_document(
    doc: ParsedDocument,
    *,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    count_tokens: CountTokens = approx_token_count,
    token_offsets: TokenOffsets | None = None,
) -> list[Chunk]:
    """Chunk a parsed document; page numbers come from its pages' start offsets."""
    return chunk_text(
        doc.full_text,
        headings=doc.headings,
        page_starts=[(p.start_offset, p.number) for p in doc.pages],
        chunk_tokens=chunk_tokens,
        overlap_tokens=overlap_tokens,
        count_tokens=count_tokens,
        token_offsets=token_offsets,
    )


def chunk_text(
    text: str,
    *,
    headings: Sequence[Heading] = (),
    page_starts: Sequence[tuple[int, int]] = ((0, 1),),
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    count_tokens: CountTokens = approx_token_count,
    token_offsets: TokenOffsets | None = None,
) -> list[Chunk]:
    """Chunk ``text``; ``page_starts`` lists (offset, page number) in increasing offset order.

    ``token_offsets``, when given, tokenizes the whole text once and counts any span from the
    offsets (much faster than calling ``count_tokens`` per paragraph, sentence and word; the
    counts agree for spans that start and end on whitespace, which all units here do).
    """
    if chunk_tokens < 1:
        raise ValueError("chunk_tokens must be positive")
    if not 0 <= overlap_tokens < chunk_tokens:
        raise ValueError("overlap_tokens must be >= 0 and smaller than chunk_tokens")
    page_offsets = [offset for offset, _ in page_starts] or [0]
    page_numbers = [number for _, number in page_starts] or [1]

    def page_at(offset: int) -> int:
        return page_numbers[max(bisect.bisect_right(page_offsets, offset) - 1, 0)]

    if token_offsets is not None:
        starts = [start for start, end in token_offsets(text) if end > start]

        def span_tokens(start: int, end: int) -> int:
            return bisect.bisect_left(starts, end) - bisect.bisect_left(starts, start)
    else:

        def span_tokens(start: int, end: int) -> int:
            return count_tokens(text[start:end])

    packer = _Packer(text, chunk_tokens, overlap_tokens, span_tokens)
    chunks: list[Chunk] = []
    for start, end, heading in _sections(text, headings):
        for span_start, span_end in packer.pack(start, end):
            body = text[span_start:span_end]
            chunks.append(
                Chunk(
                    ordinal=len(chunks),
                    text=body,
                    page=page_at(span_start),
                    page_end=page_at(span_end - 1),
                    char_start=span_start,
                    char_end=span_end,
                    token_count=span_tokens(span_start, span_end),
                    heading=heading,
                    page_breaks=tuple(
                        (offset - span_start, number)
                        for offset, number in zip(page_offsets, page_numbers, strict=True)
                        if span_start < offset < span_end
                    ),
                )
            )
    return chunks


def embedding_text(chunk: Chunk) -> str:
    """The chunk text prefixed by its heading path (context for the embedder), if not already."""
    return embedding_input(chunk.heading, chunk.text)


def chunk_record(
    chunk: Chunk, *, chunk_id: str, document_id: str, owner_id: str, embedding: Any
) -> ChunkRecord:
    """The index record of a chunk with its embedding."""
    return ChunkRecord(
        id=chunk_id,
        document_id=document_id,
        owner_id=owner_id,
        ordinal=chunk.ordinal,
        text=chunk.text,
        embedding=embedding,
        char_start=chunk.char_start,
        char_end=chunk.char_end,
        page=chunk.page,
        page_end=chunk.page_end,
        page_breaks=chunk.page_breaks,
        token_count=chunk.token_count,
        heading=chunk.heading,
    )


def embedding_input(heading: str, text: str) -> str:
    """What the embedder reads for a chunk with this heading path and text."""
    if not heading:
        return text
    last = heading.rsplit(" > ", 1)[-1]
    if text.lstrip("# ").startswith(last):
        return text
    return f"{heading}\n\n{text}"


def _sections(text: str, headings: Sequence[Heading]) -> list[tuple[int, int, str]]:
    """(start, end, heading path) per section; a heading with no body joins the next one."""
    ordered = sorted((h for h in headings if 0 <= h.start < len(text)), key=lambda h: h.start)
    bounds = [0, *(h.start for h in ordered), len(text)]
    path: list[Heading] = []
    sections: list[tuple[int, int, str]] = []
    pending_start: int | None = None
    for index in range(len(bounds) - 1):
        start, end = bounds[index], bounds[index + 1]
        if index > 0:
            heading = ordered[index - 1]
            path = [h for h in path if h.level < heading.level] + [heading]
            if not text[heading.end : end].strip():
                pending_start = start if pending_start is None else pending_start
                continue
        if not text[start:end].strip():
            continue
        label = " > ".join(h.text for h in path)
        sections.append((start if pending_start is None else pending_start, end, label))
        pending_start = None
    if pending_start is not None:  # trailing headings with no body at all
        sections.append((pending_start, len(text), " > ".join(h.text for h in path)))
    return sections


class _Packer:
    """Packs the paragraphs of one section into overlapping chunk spans."""

    def __init__(
        self, text: str, limit: int, overlap: int, count: Callable[[int, int], int]
    ) -> None:
        self.text = text
        self.limit = limit
        self.overlap = overlap
        self.count = count

    def pack(self, start: int, end: int) -> list[tuple[int, int]]:
        """Chunk spans covering the non-blank text of ``text[start:end]``."""
        spans: list[tuple[int, int]] = []
        current: list[_Unit] = []
        total = 0
        for unit in self._units(start, end):
            if current and total + unit.tokens > self.limit:
                spans.append((current[0].start, current[-1].end))
                # As much overlap as fits next to the unit (none if the unit fills a chunk).
                current = self._overlap_tail(current, min(self.overlap, self.limit - unit.tokens))
                total = sum(u.tokens for u in current)
            current.append(unit)
            total += unit.tokens
        if current:
            spans.append((current[0].start, current[-1].end))
        return spans

    def _units(self, start: int, end: int) -> list[_Unit]:
        units: list[_Unit] = []
        for p_start, p_end in _trimmed_spans(self.text, start, end, _PARAGRAPH_BREAK):
            tokens = self.count(p_start, p_end)
            if tokens <= self.limit:
                units.append(_Unit(p_start, p_end, tokens))
                continue
            for s_start, s_end in _trimmed_spans(self.text, p_start, p_end, _SENTENCE_END):
                tokens = self.count(s_start, s_end)
                if tokens <= self.limit:
                    units.append(_Unit(s_start, s_end, tokens))
                else:
                    units.extend(self._word_windows(s_start, s_end))
        return units

    def _word_windows(self, start: int, end: int) -> list[_Unit]:
        """Split an over-long sentence on whitespace; a giant 'word' is cut by characters.

        Windows leave room for the overlap so that it is not dropped between them.
        """
        limit = max(1, self.limit - self.overlap)
        units: list[_Unit] = []
        w_start, w_end, total = -1, -1, 0
        for match in _WORD.finditer(self.text, start, end):
            tokens = self.count(match.start(), match.end())
            if tokens > self.limit:
                if w_start >= 0:
                    units.append(_Unit(w_start, w_end, total))
                    w_start, total = -1, 0
                units.extend(self._char_windows(match.start(), match.end(), tokens))
                continue
            if w_start >= 0 and total + tokens > limit:
                units.append(_Unit(w_start, w_end, total))
                w_start, total = -1, 0
            if w_start < 0:
                w_start = match.start()
            w_end, total = match.end(), total + tokens
        if w_start >= 0:
            units.append(_Unit(w_start, w_end, total))
        return units

    def _char_windows(self, start: int, end: int, tokens: int) -> list[_Unit]:
        step = max(1, (end - start) * self.limit // (tokens * 2))  # halve: estimate is rough
        units = []
        for s in range(start, end, step):
            e = min(s + step, end)
            units.append(_Unit(s, e, max(1, self.count(s, e))))
        return units

    def _overlap_tail(self, units: list[_Unit], budget: int) -> list[_Unit]:
        """Trailing units (or the trailing words of the last one) worth <= budget tokens."""
        if budget <= 0:
            return []
        tail: list[_Unit] = []
        total = 0
        for unit in reversed(units):
            if total + unit.tokens > budget:
                break
            tail.insert(0, unit)
            total += unit.tokens
        if tail:
            return tail
        last = units[-1]
        words = list(_WORD.finditer(self.text, last.start, last.end))
        start, total = last.end, 0
        for match in reversed(words[1:]):  # never the whole unit: that did not fit above
            tokens = self.count(match.start(), match.end())
            if total + tokens > budget:
                break
            start, total = match.start(), total + tokens
        return [_Unit(start, last.end, total)] if total else []


def _trimmed_spans(
    text: str, start: int, end: int, separator: re.Pattern[str]
) -> list[tuple[int, int]]:
    """Spans of ``text[start:end]`` between separator matches, without surrounding blanks."""
    spans = []
    cursor = start
    for match in separator.finditer(text, start, end):
        spans.append((cursor, match.start()))
        cursor = match.end()
    spans.append((cursor, end))
    result = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if s < e:
            result.append((s, e))
    return result
