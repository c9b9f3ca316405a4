"""Grounded answers: a self-contained search query, numbered sources, and [n] citations."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from botgpt.retrieval.hybrid import Hit
from botgpt.retrieval.sentences import content_words, marker_numbers, split_sentences, strip_markers

GROUNDING_RULES = (
    "Answer the user's question using only the numbered sources below. "
    "Cite the sources you use with their numbers in square brackets, like [1] or [2]. "
    "If the sources do not contain the answer, say that you cannot find it in the documents."
)
# Words that point back to something said earlier: the question is not self-contained.
_ANAPHORA = re.compile(
    r"\b(it|its|one|ones|that|this|those|these|they|them|their|he|she|him|her|there|"
    r"same|above|former|latter|more|else)\b",
    re.IGNORECASE,
)
SNIPPET_CHARS = 240
_WHOLE_DOCUMENT = re.compile(
    r"\b(summari[sz]e|summary|overview|outline|tl;?dr|key points|main points|gist|"
    r"what (is|are) (this|these|the) (document|file|pdf|paper|text)s?( about)?)\b",
    re.IGNORECASE,
)


class HistoryMessage(Protocol):
    """A prior message as stored."""

    @property
    def role(self) -> str:
        """`user` or `assistant`."""
        ...

    @property
    def content(self) -> str:
        """The text."""
        ...


@dataclass(frozen=True, slots=True)
class Source:
    """A passage given to the model as source [number]."""

    number: int
    hit: Hit
    filename: str

    def citation(self, marked: bool, claim: str = "") -> dict[str, Any]:
        """The stored citation: where the passage is, and a snippet of it.

        ``claim`` is the answer text that cites this source; the passage sentence sharing
        most words with it gives the citation's ``page`` (a passage may cross a page break)
        and starts the snippet. ``page_start``/``page_end`` are the whole passage's pages.
        """
        quoted = quoted_offset(self.hit.text, claim) if claim else None
        offset = quoted or 0
        return {
            "number": self.number,
            "document_id": self.hit.document_id,
            "document_name": self.filename,
            "chunk_id": self.hit.chunk_id,
            "page": self.hit.page_at(offset),
            "page_start": self.hit.page,
            "page_end": self.hit.page_end if self.hit.page_end is not None else self.hit.page,
            "char_start": self.hit.char_start,
            "char_end": self.hit.char_end,
            "snippet": _snippet(self.hit.text[offset:]),
            "score": round(self.hit.score, 6),
            "cited_in_answer": marked,
        }


def search_query(question: str, history: Sequence[HistoryMessage]) -> str:
    """The question made self-contained for search.

    A short follow-up ("how do I request one?") or one that refers back ("what does it
    cost?") is searched together with the previous question, so the passage about the
    earlier topic is found; a self-contained question is searched as is.
    """
    previous = next((m.content for m in reversed(history) if m.role == "user"), None)
    if previous is None:
        return question
    if len(question.split()) <= 8 or _ANAPHORA.search(question):
        return f"{previous}\n{question}"
    return question


def number_sources(hits: Sequence[Hit], filenames: dict[str, str]) -> list[Source]:
    """Number passages [1]..[n] in rank order."""
    return [Source(i, hit, filenames.get(hit.document_id, "")) for i, hit in enumerate(hits, 1)]


def sources_block(sources: Sequence[Source]) -> str:
    """The grounding text the model reads: rules, then each numbered passage with its origin."""
    parts = [GROUNDING_RULES, ""]
    for s in sources:
        where = s.filename or "document"
        if s.hit.page is not None:
            where += f", page {s.hit.page}"
        parts.append(f"[{s.number}] ({where})\n{s.hit.text.strip()}\n")
    return "\n".join(parts)


def citations(answer: str, sources: Sequence[Source]) -> list[dict[str, Any]]:
    """Citations of an answer: the sources its [n] markers name, in order of first mention.

    When the model cited nothing, every source it was given is returned, marked as not
    cited in the answer, so a reader can still check what the answer was grounded on.
    """
    by_number = {s.number: s for s in sources}
    claims: dict[int, list[str]] = {}
    # Sentences keep their markers ("... 25 days. [1]" is one sentence).
    for sentence in split_sentences(answer):
        claim = strip_markers(sentence.text)
        for n in marker_numbers(sentence.text):
            if n in by_number:
                claims.setdefault(n, []).append(claim)
    if not claims:
        return [s.citation(False) for s in sources]
    return [by_number[n].citation(True, " ".join(texts)) for n, texts in claims.items()]


def quoted_offset(passage: str, claim: str) -> int | None:
    """Where in ``passage`` the sentence sharing the most words with ``claim`` starts.

    None when no sentence shares a content word (the claim paraphrases too freely to place).
    """
    wanted = content_words(claim)
    best, best_overlap = None, 0
    for sentence in split_sentences(passage):
        overlap = len(wanted & content_words(sentence.text))
        if overlap > best_overlap:
            best, best_overlap = sentence.start, overlap
    return best


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) <= SNIPPET_CHARS:
        return flat
    return flat[:SNIPPET_CHARS].rsplit(" ", 1)[0] + "…"


class Scope(Protocol):
    """What grounding needs from the documents domain (`DocumentScope`)."""

    async def check_ready(self, owner_id: str, document_ids: Sequence[str]) -> Sequence[Any]:
        """Raise unless every document is the owner's and ready."""
        ...

    async def search(
        self,
        owner_id: str,
        document_ids: Sequence[str],
        query: str,
        k: int,
        *,
        min_score: float | None = None,
    ) -> list[Hit]:
        """Relevant passages, best first; empty when nothing passes the relevance floor."""
        ...

    async def filenames(self, owner_id: str, document_ids: set[str]) -> dict[str, str]:
        """Names of the owner's documents by id."""
        ...


@dataclass(frozen=True, slots=True)
class Grounding:
    """The sources of one grounded turn (none: the documents do not cover the question)."""

    query: str
    sources: list[Source]

    @property
    def block(self) -> str | None:
        """The prompt text of the sources, or None when there are none."""
        return sources_block(self.sources) if self.sources else None

    def manifest(self) -> dict[str, Any]:
        """What the context manifest records of the grounding."""
        return {
            "query": self.query,
            "sources": [
                {"number": s.number, "chunk_id": s.hit.chunk_id, "document_id": s.hit.document_id}
                for s in self.sources
            ],
        }


class Grounder:
    """Finds the sources of a grounded turn through the documents' scope."""

    def __init__(self, scope: Scope, top_k: int) -> None:
        self.scope = scope
        self.top_k = top_k

    async def ground(
        self,
        owner_id: str,
        document_ids: Sequence[str],
        question: str,
        history: Sequence[HistoryMessage],
        *,
        top_k: int | None = None,
        min_score: float | None = None,
    ) -> Grounding:
        """Search the documents for the question made self-contained.

        `top_k` and `min_score` (the relevance floor) come from the turn's profile; None
        takes the defaults.
        """
        k = top_k or self.top_k
        query = search_query(question, history)
        hits = await self.scope.search(owner_id, document_ids, query, k, min_score=min_score)
        if not hits and _WHOLE_DOCUMENT.search(question):
            # "Summarize the document" matches no passage in particular; give the model the
            # best-ranked passages regardless of the relevance floor.
            hits = await self.scope.search(owner_id, document_ids, query, k, min_score=-1.0)
        names = await self.scope.filenames(owner_id, {h.document_id for h in hits})
        return Grounding(query, number_sources(hits, names))
