"""Support check of grounded answers: is each sentence backed by the passages the model read?

`check_support` splits an answer into sentences and scores each claim against every sentence
(and pair of adjacent sentences) of the numbered passages with the embedder (cosine), then
applies exact checks: a number, a month or weekday, or a proper name the sentence states
that appears in no passage makes it unsupported whatever its similarity. Sentences that make
no claim about the documents ("I could not find this in the documents", "I hope this
helps") are kept apart as ``meta``. When the question is given, the report also carries the
extractive answer (`botgpt.retrieval.extractive`), so a policy can fall back to it without
another model call. `botgpt.retrieval.answer_policy` turns the report into the final text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from botgpt.retrieval.embedders import Embedder, Vectors
from botgpt.retrieval.extractive import ExtractiveAnswer, Passage, extract_from_scores
from botgpt.retrieval.sentences import (
    Span,
    calendar_words,
    content_words,
    dates,
    marker_numbers,
    names,
    numbers,
    split_sentences,
    stems,
    strip_markers,
    vocabulary,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "Passage",
    "PreparedPassages",
    "SentenceKind",
    "SentenceSupport",
    "SupportReport",
    "check_support",
    "prepare_passages",
]

# Calibrated with all-MiniLM-L6-v2 on bench/data/grounded_qa (see bench/README or the
# answer_eval module): gold paraphrases score 0.62-0.95 against their passage, facts of
# other questions 0.05-0.55 against the passages given. 0.55 keeps nearly every true
# paraphrase and leaves wrong facts to the exact checks.
DEFAULT_THRESHOLD = 0.55
# A sentence on the right topic that adds its own story ("depends on your jurisdiction")
# embeds close to the passage but brings words the passage never uses. A paraphrase brings
# some too ("staff", "holiday", "retained"): on the QA set's paraphrases up to half of their
# content words; allowing fewer (none in a sentence of three) rejected a third of them.


def allowed_new_words(content_words: int) -> int:
    """How many content words of a claim may be absent from the passages that back it."""
    return content_words // 2


SentenceKind = Literal["claim", "meta", "refusal", "empty"]

_REFUSAL = re.compile(
    r"\b(?:(?:could|can|did|do|does)\s*(?:not|n['\u2019]t)|cannot|unable to|no information|not "
    r"(?:mentioned|stated|specified|provided|included|covered|found|available))\b",
    re.IGNORECASE,
)
_ABOUT_SOURCES = re.compile(
    r"\b(?:documents?|sources?|passages?|context|provided|information|text)\b", re.IGNORECASE
)
_FILLER = re.compile(
    r"^(?:i hope (?:this|that) helps|let me know|feel free|sure|certainly|of course|"
    r"here (?:is|are)|based on the (?:sources|documents|passages|information)|"
    r"according to the (?:sources|documents|passages)|thank you|thanks|great question|"
    r"answer|in summary|to summari[sz]e)\b[^.!?]*[.!?:]?$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class SentenceSupport:
    """How one sentence of an answer is backed by the passages.

    ``start``/``end`` locate it in the checked answer; ``passage`` is the number of the best
    matching passage and ``passage_start``/``passage_end`` the span of its best sentence(s)
    in that passage's text; ``page`` is that span's page. ``scores`` holds the best cosine per
    passage number. ``reasons`` explain an unsupported verdict (and notable facts).
    """

    text: str
    start: int
    end: int
    kind: SentenceKind
    supported: bool
    score: float
    passage: int | None
    passage_start: int | None
    passage_end: int | None
    page: int | None
    cited: tuple[int, ...]
    scores: dict[int, float]
    reasons: tuple[str, ...] = ()

    @property
    def is_claim(self) -> bool:
        """Whether the sentence states something about the documents."""
        return self.kind == "claim"

    def supporting(self, threshold: float) -> list[int]:
        """Passage numbers whose similarity reaches ``threshold``, best first."""
        ranked = sorted(self.scores.items(), key=lambda item: -item[1])
        return [number for number, score in ranked if score >= threshold]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored on the message and sent in the stream's done event)."""
        return {
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "kind": self.kind,
            "supported": self.supported,
            "score": round(self.score, 4),
            "passage": self.passage,
            "passage_start": self.passage_start,
            "passage_end": self.passage_end,
            "page": self.page,
            "cited": list(self.cited),
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True, slots=True)
class SupportReport:
    """The support check of one answer."""

    answer: str
    sentences: tuple[SentenceSupport, ...]
    threshold: float
    model: str
    elapsed_ms: float
    extract: ExtractiveAnswer | None = None
    passages: tuple[Passage, ...] = field(default=(), repr=False)

    @property
    def claims(self) -> list[SentenceSupport]:
        """The sentences that state something about the documents."""
        return [s for s in self.sentences if s.is_claim]

    @property
    def unsupported(self) -> list[SentenceSupport]:
        """Claims the passages do not back."""
        return [s for s in self.sentences if s.is_claim and not s.supported]

    @property
    def unsupported_rate(self) -> float:
        """Share of claims that are unsupported (0 when there is no claim)."""
        claims = self.claims
        return len(self.unsupported) / len(claims) if claims else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary and per-sentence records."""
        return {
            "threshold": self.threshold,
            "model": self.model,
            "elapsed_ms": round(self.elapsed_ms, 2),
            "claims": len(self.claims),
            "unsupported": len(self.unsupported),
            "sentences": [s.as_dict() for s in self.sentences],
        }


def sentence_kind(text: str) -> SentenceKind:
    """Whether a sentence makes a claim, says the sources lack the answer, or is filler."""
    plain = strip_markers(text).strip()
    if not content_words(plain):
        return "empty"
    if numbers(plain):
        return "claim"
    if _REFUSAL.search(plain) and _ABOUT_SOURCES.search(plain):
        return "refusal"
    if _FILLER.match(plain):
        return "meta"
    return "claim"


@dataclass(frozen=True, slots=True)
class _Unit:
    """A passage sentence, or two adjacent ones, that a claim is compared with."""

    passage: int
    start: int
    end: int
    text: str


def _units(passages: Sequence[Passage]) -> tuple[list[_Unit], list[_Unit]]:
    sentences: list[_Unit] = []
    pairs: list[_Unit] = []
    for p in passages:
        spans = split_sentences(p.text)
        for i, span in enumerate(spans):
            sentences.append(_Unit(p.number, span.start, span.end, span.text))
            if i + 1 < len(spans):
                end = spans[i + 1].end
                pairs.append(_Unit(p.number, span.start, end, p.text[span.start : end]))
    return sentences, pairs


@dataclass(frozen=True, slots=True)
class PreparedPassages:
    """The passages' half of the check: sentences (and adjacent pairs) embedded, facts read.

    It does not depend on the answer, so `prepare_passages` can run while the model is still
    writing (with a remote model the CPU is idle then); `check_support` then only embeds the
    answer's sentences.
    """

    passages: tuple[Passage, ...]
    units: tuple[_Unit, ...]  # every sentence, then every pair of adjacent sentences
    sentence_count: int
    vectors: Vectors
    facts: dict[int, _Facts]
    question: str | None
    question_vector: Vectors | None
    model: str
    elapsed_ms: float


async def prepare_passages(
    passages: Sequence[Passage], embedder: Embedder, *, question: str | None = None
) -> PreparedPassages:
    """Embed the passages' sentences (and the question, for the extractive answer)."""
    started = time.perf_counter()
    sentences, pairs = _units(passages)
    units = (*sentences, *pairs)
    texts = [u.text for u in units] + ([question] if question is not None else [])
    vectors = await embedder.embed(texts) if texts else np.zeros((0, 1), np.float32)
    return PreparedPassages(
        passages=tuple(passages),
        units=units,
        sentence_count=len(sentences),
        vectors=vectors[: len(units)],
        facts={p.number: _Facts.of(p) for p in passages},
        question=question,
        question_vector=vectors[len(units) :] if question is not None else None,
        model=embedder.name,
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )


async def check_support(
    answer: str,
    passages: Sequence[Passage] | PreparedPassages,
    embedder: Embedder,
    *,
    question: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    extract_sentences: int = 3,
) -> SupportReport:
    """Score every sentence of ``answer`` against the passages.

    With ``question`` (or a question given to `prepare_passages`), the report also holds
    the extractive answer to it. ``elapsed_ms`` is this call's time: with `PreparedPassages`
    only the answer's part, which is what a reader waits for after the last token.
    """
    started = time.perf_counter()
    prepared = (
        passages
        if isinstance(passages, PreparedPassages)
        else await prepare_passages(passages, embedder, question=question)
    )
    spans = split_sentences(answer)
    kinds = [sentence_kind(s.text) for s in spans]
    claim_idx = [i for i, kind in enumerate(kinds) if kind == "claim"]
    similarity = None
    if claim_idx and prepared.units:
        claims_v = await embedder.embed([strip_markers(spans[i].text) for i in claim_idx])
        similarity = claims_v @ prepared.vectors.T
    by_number = {p.number: p for p in prepared.passages}

    records: list[SentenceSupport] = []
    for i, span in enumerate(spans):
        cited = tuple(marker_numbers(span.text))
        if kinds[i] != "claim":
            records.append(
                SentenceSupport(
                    span.text, span.start, span.end, kinds[i], True, 0.0,
                    None, None, None, None, cited, {},
                )
            )  # fmt: skip
            continue
        row = similarity[claim_idx.index(i)] if similarity is not None else None
        records.append(
            _judge(span, row, prepared.units, by_number, cited, threshold, prepared.facts)
        )  # fmt: skip

    extract = None
    if prepared.question is not None and prepared.question_vector is not None:
        count = prepared.sentence_count
        extract = extract_from_scores(
            prepared.question,
            prepared.passages,
            prepared.units[:count],
            prepared.vectors[:count] @ prepared.question_vector[0],
            extract_sentences,
        )
    return SupportReport(
        answer=answer,
        sentences=tuple(records),
        threshold=threshold,
        model=embedder.name,
        elapsed_ms=(time.perf_counter() - started) * 1000,
        extract=extract,
        passages=prepared.passages,
    )


@dataclass(frozen=True, slots=True)
class _Facts:
    """What the exact checks compare a claim with, for one passage."""

    numbers: frozenset[str]
    dates: frozenset[str]
    calendar: frozenset[str]
    vocabulary: frozenset[str]
    stems: frozenset[str]

    @classmethod
    def of(cls, p: Passage) -> _Facts:
        return cls(
            frozenset(numbers(p.text)),
            frozenset(dates(p.text)),
            frozenset(calendar_words(p.text)),
            frozenset(vocabulary(p.text) | vocabulary(p.document)),
            frozenset(stems(p.text) | stems(p.document)),
        )


def _exact_reasons(text: str, support: list[_Facts], every: list[_Facts]) -> list[str]:
    """Facts of the claim in none of the passages that support it (or in no passage)."""
    reasons: list[str] = []
    checks = (
        ("number", numbers(text), "numbers"),
        ("date", dates(text), "dates"),
        ("date word", calendar_words(text), "calendar"),
        ("name", names(text), "vocabulary"),
    )
    for label, found, attr in checks:
        backed = set().union(*(getattr(f, attr) for f in support))
        anywhere = set().union(*(getattr(f, attr) for f in every))
        for value in sorted(found - backed):
            where = "a source that backs the sentence" if value in anywhere else "any source"
            reasons.append(f"{label} {value} is not in {where}")
    return reasons


def _judge(
    span: Span,
    row: Any,
    units: Sequence[_Unit],
    by_number: dict[int, Passage],
    cited: tuple[int, ...],
    threshold: float,
    facts: dict[int, _Facts],
) -> SentenceSupport:
    scores: dict[int, float] = {}
    best_unit: _Unit | None = None
    best = 0.0
    if row is not None:
        for unit, value in zip(units, row.tolist(), strict=True):
            if value > scores.get(unit.passage, -1.0):
                scores[unit.passage] = float(value)
            if best_unit is None or value > best:
                best_unit, best = unit, float(value)
    backing = [n for n, score in scores.items() if score >= threshold] or (
        [best_unit.passage] if best_unit else []
    )
    reasons = _exact_reasons(span.text, [facts[n] for n in backing], list(facts.values()))
    if best < threshold:
        reasons.append(f"similarity {best:.2f} is below {threshold:.2f}")
    words = stems(span.text)
    known = set().union(*(facts[n].stems for n in backing))
    missing = sorted(words - known)
    if len(missing) > allowed_new_words(len(words)):
        reasons.append(f"words in no backing source: {', '.join(missing)}")
    page = None
    if best_unit is not None and best_unit.passage in by_number:
        page = by_number[best_unit.passage].page_at(best_unit.start)
    return SentenceSupport(
        text=span.text,
        start=span.start,
        end=span.end,
        kind="claim",
        supported=not reasons,
        score=best,
        passage=best_unit.passage if best_unit else None,
        passage_start=best_unit.start if best_unit else None,
        passage_end=best_unit.end if best_unit else None,
        page=page,
        cited=cited,
        scores=scores,
        reasons=tuple(reasons),
    )
