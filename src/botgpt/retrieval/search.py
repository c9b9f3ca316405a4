"""Query-time search: keyword, vector or hybrid, always scoped to an owner and documents."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from botgpt.retrieval.embedders import Embedder
from botgpt.retrieval.hybrid import Hit, convex_fusion, reciprocal_rank_fusion, single_list_hits
from botgpt.retrieval.stores import ChunkIndex, ScoredChunk

SearchMode = Literal["keyword", "vector", "hybrid"]
FusionMethod = Literal["rrf", "convex"]


class Reranker(Protocol):
    """Reorders the fused candidates (e.g. a cross-encoder); may drop hits."""

    async def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        """Return ``hits`` best first."""


@dataclass(frozen=True, slots=True)
class SearchParams:
    """Tunable search settings; defaults are the values chosen on SciFact train queries."""

    mode: SearchMode = "hybrid"
    fusion: FusionMethod = "rrf"
    # k=1 (top ranks dominate) beat the customary 60 on SciFact train: 0.731 vs 0.720 nDCG@10,
    # at 50 and at 300 candidates alike; equal weights were best at k=1.
    rrf_k: float = 1.0
    keyword_weight: float = 1.0
    vector_weight: float = 1.0
    alpha: float = 0.4  # convex fusion: weight of the vector score (best convex on train)
    candidates: int = 50  # results fetched from each list before fusion (at least k)


class HybridSearcher:
    """Runs keyword and/or vector search on a ``ChunkIndex`` and fuses the two lists.

    The query is embedded in a worker thread while the keyword query runs on the database,
    so hybrid search costs roughly max(embed, keyword) + vector rather than their sum. Given
    ``vector_index`` (the same index bound to a second connection), the vector query runs
    beside the keyword query too: max(keyword, embed + vector).
    """

    def __init__(
        self,
        index: ChunkIndex,
        embedder: Embedder,
        params: SearchParams | None = None,
        *,
        reranker: Reranker | None = None,
        vector_index: ChunkIndex | None = None,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.params = params or SearchParams()
        self.reranker = reranker
        self.vector_index = vector_index

    async def search(
        self,
        query: str,
        owner_id: str | None,
        document_ids: Sequence[str] | None = None,
        k: int = 8,
        *,
        mode: SearchMode | None = None,
    ) -> list[Hit]:
        """Best ``k`` hits for ``query`` among the owner's chunks (in ``document_ids`` if given)."""
        mode = mode or self.params.mode
        if not query.strip() or k <= 0:
            return []
        fetch = max(k, self.params.candidates)
        if mode == "keyword":
            found = await self.index.keyword_search(query, owner_id, document_ids, fetch)
            return await self._finish(query, single_list_hits(found, source="keyword"), k)
        if mode == "vector":
            vector = await self.embedder.embed_query(query)
            found = await self.index.vector_search(vector, owner_id, document_ids, fetch)
            return await self._finish(query, single_list_hits(found, source="vector"), k)
        if mode != "hybrid":
            raise ValueError(f"unknown search mode {mode!r}")
        keyword, vector_hits = await self._both_lists(query, owner_id, document_ids, fetch)
        # The reranker (if any) sees the full fused candidate list; otherwise only k are kept.
        limit = None if self.reranker is not None else k
        if self.params.fusion == "convex":
            fused = convex_fusion(keyword, vector_hits, alpha=self.params.alpha, limit=limit)
        else:
            fused = reciprocal_rank_fusion(
                keyword,
                vector_hits,
                k=self.params.rrf_k,
                keyword_weight=self.params.keyword_weight,
                vector_weight=self.params.vector_weight,
                limit=limit,
            )
        return await self._finish(query, fused, k)

    async def _both_lists(
        self, query: str, owner_id: str | None, document_ids: Sequence[str] | None, fetch: int
    ) -> tuple[list[ScoredChunk], list[ScoredChunk]]:
        """The keyword and vector lists, overlapped as far as the connections allow."""
        embedding_task = asyncio.ensure_future(self.embedder.embed_query(query))
        if self.vector_index is None:  # one connection: the two queries take turns
            try:
                keyword = await self.index.keyword_search(query, owner_id, document_ids, fetch)
            except BaseException:
                embedding_task.cancel()
                raise
            vector = await self.index.vector_search(
                await embedding_task, owner_id, document_ids, fetch
            )
            return keyword, vector
        side = self.vector_index

        async def vector_list() -> list[ScoredChunk]:
            return await side.vector_search(await embedding_task, owner_id, document_ids, fetch)

        tasks = (
            asyncio.ensure_future(self.index.keyword_search(query, owner_id, document_ids, fetch)),
            asyncio.ensure_future(vector_list()),
        )
        try:
            keyword, vector = await asyncio.gather(*tasks)
        except BaseException:
            for task in (*tasks, embedding_task):
                task.cancel()
            await asyncio.gather(*tasks, embedding_task, return_exceptions=True)
            raise
        return keyword, vector

    async def _finish(self, query: str, hits: list[Hit], k: int) -> list[Hit]:
        if self.reranker is not None and hits:
            hits = await self.reranker.rerank(query, hits)
        return hits[:k]
