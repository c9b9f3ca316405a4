"""Extractive answers: the passages' own sentences that best answer a question, quoted.

No model writes anything: one to three sentences of the top passages are chosen by cosine
similarity to the question (plus a small bonus for sharing its words), quoted verbatim with
their ``[n]`` markers and a lead naming the document and page ("From handbook.pdf, page 3:").
Used when the model's answer is not supported, when the model is not trusted with the
question, and when the provider is down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from botgpt.retrieval.embedders import Embedder
from botgpt.retrieval.sentences import content_words, split_sentences
from botgpt.retrieval.stores import page_at

if TYPE_CHECKING:
    from botgpt.retrieval.hybrid import Hit

__all__ = ["ExtractiveAnswer", "Passage", "Quote", "extract_from_scores", "extractive_answer"]

# Passages (in rank order) whose sentences may be quoted: lower ranks are rarely the answer.
EXTRACT_PASSAGES = 3
# A further sentence is quoted only when it scores almost as well as the best one, or, when
# it follows the best one in its passage, reasonably well (the answer often comes in the
# sentence after the one naming the topic: "The ferry leaves... The crossing takes...").
EXTRA_MARGIN = 0.06
NEXT_MARGIN = 0.3
# Shorter "sentences" are headings ("Tyre pressure."), not answers.
MIN_WORDS = 4
_OVERLAP_WEIGHT = 0.15


@dataclass(frozen=True, slots=True)
class Passage:
    """A numbered passage the model was given (source [number])."""

    number: int
    text: str
    document: str = ""
    page: int | None = None
    page_breaks: tuple[tuple[int, int], ...] = ()  # (offset in text, page number)
    document_id: str | None = None
    char_start: int | None = None  # where the passage starts in its document's text

    @classmethod
    def from_hit(cls, number: int, hit: Hit, document: str = "") -> Passage:
        """The passage of a search hit given to the model as [number]."""
        return cls(
            number=number,
            text=hit.text,
            document=document,
            page=hit.page,
            page_breaks=hit.page_breaks,
            document_id=hit.document_id,
            char_start=hit.char_start,
        )

    def page_at(self, offset: int) -> int | None:
        """The page of a character offset within ``text``."""
        return page_at(self.page, self.page_breaks, offset)


@dataclass(frozen=True, slots=True)
class Quote:
    """One quoted sentence: passage number, its span in the passage text, page, score."""

    passage: int
    start: int
    end: int
    text: str
    page: int | None
    document: str
    score: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "passage": self.passage,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "page": self.page,
            "document": self.document,
            "score": round(self.score, 4),
        }


@dataclass(frozen=True, slots=True)
class ExtractiveAnswer:
    """An answer made of quoted passage sentences, with ``[n]`` markers and leads."""

    text: str
    quotes: tuple[Quote, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"text": self.text, "quotes": [q.as_dict() for q in self.quotes]}


@dataclass(frozen=True, slots=True)
class _Sentence:
    """A passage sentence that may be quoted."""

    passage: int
    start: int
    end: int
    text: str


async def extractive_answer(
    question: str,
    passages: Sequence[Passage],
    embedder: Embedder,
    *,
    max_sentences: int = 3,
) -> ExtractiveAnswer | None:
    """The best one to three sentences of the top passages for ``question``, quoted.

    None when there is no passage. Costs one embedding call, no model call.
    """
    units = [
        _Sentence(p.number, s.start, s.end, s.text)
        for p in passages[:EXTRACT_PASSAGES]
        for s in split_sentences(p.text)
    ]
    if not units:
        return None
    vectors = await embedder.embed([question, *[u.text for u in units]])
    return extract_from_scores(question, passages, units, vectors[1:] @ vectors[0], max_sentences)


def extract_from_scores(
    question: str,
    passages: Sequence[Passage],
    units: Sequence[Any],
    cosines: np.ndarray[Any, Any],
    max_sentences: int = 3,
) -> ExtractiveAnswer | None:
    """Choose and quote sentences given their cosine similarity to the question.

    ``units`` have ``passage``, ``start``, ``end`` and ``text`` (sentences of the passages).
    """
    allowed = {p.number for p in passages[:EXTRACT_PASSAGES]}
    by_number = {p.number: p for p in passages}
    asked = content_words(question)
    scored: list[tuple[float, Any]] = []
    for unit, cosine in zip(units, cosines.tolist(), strict=True):
        if unit.passage not in allowed or len(unit.text.split()) < MIN_WORDS:
            continue
        shared = len(asked & content_words(unit.text)) / len(asked) if asked else 0.0
        scored.append((float(cosine) + _OVERLAP_WEIGHT * shared, unit))
    if not scored:
        return None
    scored.sort(key=lambda item: -item[0])
    best, top = scored[0]
    chosen = [scored[0]]
    after = [item for item in scored if item[1].passage == top.passage and item[1].start >= top.end]
    if after and max_sentences > 1:
        following = min(after, key=lambda item: item[1].start)
        if following[0] >= best - NEXT_MARGIN:
            chosen.append(following)
    for score, unit in scored[1:]:
        if len(chosen) >= max_sentences or score < best - EXTRA_MARGIN:
            break
        if all(unit is not other for _, other in chosen):
            chosen.append((score, unit))
    # Quote in reading order: passage rank, then position in the passage.
    chosen.sort(key=lambda item: (item[1].passage, item[1].start))
    quotes = tuple(
        Quote(
            passage=unit.passage,
            start=unit.start,
            end=unit.end,
            text=" ".join(unit.text.split()),
            page=by_number[unit.passage].page_at(unit.start),
            document=by_number[unit.passage].document,
            score=score,
        )
        for score, unit in chosen
    )
    return ExtractiveAnswer(format_quotes(quotes), quotes)


def format_quotes(quotes: Sequence[Quote]) -> str:
    """Quotes grouped by document and page, each group with its lead, each quote with [n]."""
    groups: list[tuple[str, list[Quote]]] = []
    for quote in quotes:
        lead = _lead(quote.document, quote.page)
        if groups and groups[-1][0] == lead:
            groups[-1][1].append(quote)
        else:
            groups.append((lead, [quote]))
    lines = []
    for lead, group in groups:
        quoted = " ".join(f"\u201c{q.text}\u201d [{q.passage}]" for q in group)
        lines.append(f"{lead} {quoted}")
    return "\n".join(lines)


def _lead(document: str, page: int | None) -> str:
    where = document or "the documents"
    if page is not None:
        where += f", page {page}"
    return f"From {where}:"
