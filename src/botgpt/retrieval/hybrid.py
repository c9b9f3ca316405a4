"""Fusion of keyword and vector result lists into one ranking.

Reciprocal rank fusion (RRF) only looks at ranks, so it needs no score calibration between
BM25 and cosine similarity; ``convex_fusion`` mixes min-max normalised scores instead, which
can use how much better the top hit is than the rest. Both return ``Hit`` objects carrying
the span needed for a citation and each list's rank/score for thresholds and debugging.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from botgpt.retrieval.stores import ScoredChunk, page_at


@dataclass(frozen=True, slots=True)
class Hit:
    """A fused search result: what a grounded answer cites as [n]."""

    chunk_id: str
    document_id: str
    ordinal: int
    page: int | None
    char_start: int
    char_end: int
    text: str
    heading: str
    score: float
    keyword_rank: int | None = None  # 1-based rank in the keyword list, None if absent
    vector_rank: int | None = None
    keyword_score: float | None = None
    vector_score: float | None = None  # cosine similarity, comparable across queries
    page_end: int | None = None
    page_breaks: tuple[tuple[int, int], ...] = ()  # (offset in text, page) inside the chunk

    def page_at(self, offset: int) -> int | None:
        """The page of a character offset within ``text`` (the chunk's first page if none)."""
        return page_at(self.page, self.page_breaks, offset)


def _hit(
    chunk: ScoredChunk,
    score: float,
    keyword: tuple[int, float] | None = None,
    vector: tuple[int, float] | None = None,
) -> Hit:
    """A hit built once (``dataclasses.replace`` on every candidate cost ~1 ms a search)."""
    return Hit(
        chunk_id=chunk.chunk_id,
        document_id=chunk.document_id,
        ordinal=chunk.ordinal,
        page=chunk.page,
        char_start=chunk.char_start,
        char_end=chunk.char_end,
        text=chunk.text,
        heading=chunk.heading,
        score=score,
        keyword_rank=keyword[0] if keyword else None,
        keyword_score=keyword[1] if keyword else None,
        vector_rank=vector[0] if vector else None,
        vector_score=vector[1] if vector else None,
        page_end=chunk.page_end,
        page_breaks=chunk.page_breaks,
    )


def _ranks(results: Sequence[ScoredChunk]) -> dict[str, tuple[int, float]]:
    """(1-based rank, score) of each chunk's first appearance in one list."""
    ranks: dict[str, tuple[int, float]] = {}
    for rank, chunk in enumerate(results, start=1):
        ranks.setdefault(chunk.chunk_id, (rank, chunk.score))
    return ranks


def _collect(keyword: Sequence[ScoredChunk], vector: Sequence[ScoredChunk]) -> dict[str, Hit]:
    chunks = {c.chunk_id: c for c in reversed(vector)}
    chunks.update((c.chunk_id, c) for c in reversed(keyword))  # first appearance wins
    keyword_ranks, vector_ranks = _ranks(keyword), _ranks(vector)
    return {
        chunk_id: _hit(chunk, 0.0, keyword_ranks.get(chunk_id), vector_ranks.get(chunk_id))
        for chunk_id, chunk in chunks.items()
    }


def _ranked(hits: dict[str, Hit], scores: dict[str, float], limit: int | None) -> list[Hit]:
    # Ties: prefer the better best-rank, then the chunk id, so results are deterministic.
    def key(chunk_id: str) -> tuple[float, int, str]:
        hit = hits[chunk_id]
        best = min(r for r in (hit.keyword_rank, hit.vector_rank, 1 << 30) if r is not None)
        return (-scores[chunk_id], best, chunk_id)

    order = sorted(scores, key=key)
    if limit is not None:
        order = order[:limit]
    return [replace(hits[chunk_id], score=scores[chunk_id]) for chunk_id in order]


def reciprocal_rank_fusion(
    keyword: Sequence[ScoredChunk],
    vector: Sequence[ScoredChunk],
    *,
    k: float = 60.0,
    keyword_weight: float = 1.0,
    vector_weight: float = 1.0,
    limit: int | None = None,
) -> list[Hit]:
    """Score = sum over lists of weight / (k + rank); a small k favours the top ranks."""
    hits = _collect(keyword, vector)
    scores = {}
    for chunk_id, hit in hits.items():
        score = 0.0
        if hit.keyword_rank is not None:
            score += keyword_weight / (k + hit.keyword_rank)
        if hit.vector_rank is not None:
            score += vector_weight / (k + hit.vector_rank)
        scores[chunk_id] = score
    return _ranked(hits, scores, limit)


def convex_fusion(
    keyword: Sequence[ScoredChunk],
    vector: Sequence[ScoredChunk],
    *,
    alpha: float = 0.5,
    limit: int | None = None,
) -> list[Hit]:
    """Score = alpha * norm(vector) + (1 - alpha) * norm(keyword), min-max normalised per list.

    A chunk missing from a list gets 0 for it (it scored below that list's cut-off).
    """
    hits = _collect(keyword, vector)
    keyword_norm = _min_max({c.chunk_id: c.score for c in keyword})
    vector_norm = _min_max({c.chunk_id: c.score for c in vector})
    scores = {
        chunk_id: alpha * vector_norm.get(chunk_id, 0.0)
        + (1.0 - alpha) * keyword_norm.get(chunk_id, 0.0)
        for chunk_id in hits
    }
    return _ranked(hits, scores, limit)


def _min_max(scores: dict[str, float]) -> dict[str, float]:
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    if high - low < 1e-12:
        return dict.fromkeys(scores, 1.0)
    return {key: (value - low) / (high - low) for key, value in scores.items()}


def single_list_hits(results: Sequence[ScoredChunk], *, source: str) -> list[Hit]:
    """Hits of a single mode ('keyword' or 'vector'), keeping that list's own scores."""
    hits = []
    for rank, chunk in enumerate(results, start=1):
        entry = (rank, chunk.score)
        if source == "keyword":
            hits.append(_hit(chunk, chunk.score, keyword=entry))
        else:
            hits.append(_hit(chunk, chunk.score, vector=entry))
    return hits
