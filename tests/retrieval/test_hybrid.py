"""Fusion arithmetic and the HybridSearcher on both backends."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from botgpt.retrieval.embedders import HashEmbedder
from botgpt.retrieval.hybrid import Hit, convex_fusion, reciprocal_rank_fusion
from botgpt.retrieval.search import HybridSearcher, SearchParams
from botgpt.retrieval.stores import ChunkIndex, ChunkRecord, ScoredChunk, chunk_index_for


def scored(chunk_id: str, score: float, document_id: str = "d") -> ScoredChunk:
    return ScoredChunk(chunk_id, document_id, "o", 0, chunk_id, "", 1, 0, 1, score)


KEYWORD = [scored("a", 9.0), scored("b", 5.0), scored("c", 1.0)]
VECTOR = [scored("c", 0.9), scored("d", 0.8), scored("a", 0.2)]


def test_rrf_scores_and_order() -> None:
    hits = reciprocal_rank_fusion(KEYWORD, VECTOR, k=60)
    assert [h.chunk_id for h in hits] == ["a", "c", "b", "d"]
    a = hits[0]
    assert a.score == pytest.approx(1 / 61 + 1 / 63)
    assert (a.keyword_rank, a.vector_rank, a.keyword_score, a.vector_score) == (1, 3, 9.0, 0.2)
    d = next(h for h in hits if h.chunk_id == "d")
    assert d.keyword_rank is None and d.vector_rank == 2


def test_rrf_weights_and_limit() -> None:
    hits = reciprocal_rank_fusion(KEYWORD, VECTOR, k=1, keyword_weight=0.1, vector_weight=1.0)
    assert [h.chunk_id for h in hits][:2] == ["c", "d"]
    assert len(reciprocal_rank_fusion(KEYWORD, VECTOR, limit=2)) == 2


def test_rrf_ties_are_deterministic() -> None:
    hits = reciprocal_rank_fusion([scored("x", 1.0)], [scored("y", 1.0)])
    assert [h.chunk_id for h in hits] == ["x", "y"]
    assert hits[0].score == hits[1].score


def test_convex_fusion() -> None:
    hits = convex_fusion(KEYWORD, VECTOR, alpha=0.5)
    by_id = {h.chunk_id: h for h in hits}
    assert by_id["a"].score == pytest.approx(0.5 * 1.0 + 0.5 * 0.0)
    assert by_id["c"].score == pytest.approx(0.5 * 0.0 + 0.5 * 1.0)
    assert by_id["d"].score == pytest.approx(0.5 * (0.8 - 0.2) / 0.7)
    only_vector = convex_fusion(KEYWORD, VECTOR, alpha=1.0)
    assert [h.chunk_id for h in only_vector][:2] == ["c", "d"]
    assert convex_fusion([], [], alpha=0.5) == []


def test_empty_lists() -> None:
    assert reciprocal_rank_fusion([], []) == []
    assert [h.chunk_id for h in reciprocal_rank_fusion([], VECTOR)] == ["c", "d", "a"]


DOCS = {
    "solar": [
        "Solar panels convert sunlight into electricity using photovoltaic cells.",
        "Panel efficiency drops when the cells get hot.",
    ],
    "bread": [
        "Sourdough bread rises thanks to wild yeast and lactic acid bacteria.",
        "Bake the loaf in a preheated oven at 250 degrees.",
    ],
}


async def _populate(db: AsyncConnection, owner: str) -> dict[str, str]:
    index = chunk_index_for(db)
    embedder = HashEmbedder()
    ids = {}
    for name, passages in DOCS.items():
        document_id = str(uuid.uuid4())
        ids[name] = document_id
        vectors = embedder.embed_sync(passages)
        await index.add(
            [
                ChunkRecord(
                    id=str(uuid.uuid4()),
                    document_id=document_id,
                    owner_id=owner,
                    ordinal=i,
                    text=text,
                    embedding=vectors[i],
                    char_start=0,
                    char_end=len(text),
                    page=1,
                )
                for i, text in enumerate(passages)
            ],
            embedding_model=embedder.name,
        )
    return ids


@pytest.mark.parametrize("mode", ["keyword", "vector", "hybrid"])
async def test_searcher_modes(db: AsyncConnection, mode: str) -> None:
    owner = str(uuid.uuid4())
    ids = await _populate(db, owner)
    await _populate(db, str(uuid.uuid4()))  # another owner with identical content
    searcher = HybridSearcher(chunk_index_for(db), HashEmbedder())
    hits = await searcher.search("how do solar panels make electricity", owner, None, 3, mode=mode)  # type: ignore[arg-type]
    assert hits and isinstance(hits[0], Hit)
    assert hits[0].document_id == ids["solar"] and hits[0].ordinal == 0
    assert len(hits) <= 3
    assert {h.document_id for h in hits} <= set(ids.values())
    scoped = await searcher.search("solar electricity", owner, [ids["bread"]], 5, mode=mode)  # type: ignore[arg-type]
    assert {h.document_id for h in scoped} <= {ids["bread"]}


async def test_hybrid_fusion_order_matches_rrf_of_both_lists(db: AsyncConnection) -> None:
    owner = str(uuid.uuid4())
    await _populate(db, owner)
    index = chunk_index_for(db)
    embedder = HashEmbedder()
    query = "bread oven bake"
    params = SearchParams(rrf_k=10, candidates=10)
    hits = await HybridSearcher(index, embedder, params).search(query, owner, None, 4)
    keyword = await index.keyword_search(query, owner, None, 10)
    vector = await index.vector_search(await embedder.embed_query(query), owner, None, 10)
    expected = reciprocal_rank_fusion(keyword, vector, k=10)[:4]
    assert [h.chunk_id for h in hits] == [h.chunk_id for h in expected]
    assert hits[0].keyword_rank is not None and hits[0].vector_rank is not None


async def test_searcher_convex_reranker_and_edge_cases(db: AsyncConnection) -> None:
    owner = str(uuid.uuid4())
    await _populate(db, owner)

    class Reverse:
        async def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
            return list(reversed(hits))

    index = chunk_index_for(db)
    searcher = HybridSearcher(index, HashEmbedder(), SearchParams(fusion="convex"))
    plain = await searcher.search("sourdough yeast", owner, None, 4)
    assert plain[0].text.startswith("Sourdough")
    reranked = await HybridSearcher(
        index, HashEmbedder(), SearchParams(fusion="convex"), reranker=Reverse()
    ).search("sourdough yeast", owner, None, 2)
    assert len(reranked) == 2 and reranked[0].chunk_id != plain[0].chunk_id
    assert await searcher.search("   ", owner, None, 4) == []
    assert await searcher.search("bread", owner, [], 4) == []
    with pytest.raises(ValueError):
        await searcher.search("bread", owner, None, 4, mode="fuzzy")  # type: ignore[arg-type]


class _Turns:
    """One connection shared by two index views, taking turns (a test stand-in for two
    connections); records which view ran which search and whether both were in flight."""

    def __init__(self, index: ChunkIndex) -> None:
        self.index = index
        self.lock = asyncio.Lock()
        self.calls: list[str] = []
        self.in_flight = 0
        self.overlapped = False

    def view(self, name: str, fail: bool = False) -> Any:
        turns = self

        class View:
            async def keyword_search(self, *args: Any) -> list[ScoredChunk]:
                return await turns.run(name, "keyword", turns.index.keyword_search(*args), fail)

            async def vector_search(self, *args: Any) -> list[ScoredChunk]:
                return await turns.run(name, "vector", turns.index.vector_search(*args), fail)

        return View()

    async def run(self, name: str, kind: str, call: Any, fail: bool) -> list[ScoredChunk]:
        self.in_flight += 1
        self.overlapped |= self.in_flight > 1
        try:
            await asyncio.sleep(0.01)  # both are now in flight when run side by side
            async with self.lock:
                self.calls.append(f"{name}:{kind}")
                if fail:
                    call.close()
                    raise RuntimeError("vector side down")
                result: list[ScoredChunk] = await call
                return result
        finally:
            self.in_flight -= 1


async def test_hybrid_on_two_connections_runs_both_lists_at_once(db: AsyncConnection) -> None:
    owner = str(uuid.uuid4())
    await _populate(db, owner)
    index = chunk_index_for(db)
    embedder = HashEmbedder()
    query = "bread oven bake"
    params = SearchParams(rrf_k=10, candidates=10)
    alone = await HybridSearcher(index, embedder, params).search(query, owner, None, 4)
    turns = _Turns(index)
    paired = HybridSearcher(
        turns.view("first"), embedder, params, vector_index=turns.view("second")
    )
    hits = await paired.search(query, owner, None, 4)
    assert [h.chunk_id for h in hits] == [h.chunk_id for h in alone]
    assert sorted(turns.calls) == ["first:keyword", "second:vector"]
    assert turns.overlapped


async def test_hybrid_on_two_connections_reports_a_failing_side(db: AsyncConnection) -> None:
    owner = str(uuid.uuid4())
    await _populate(db, owner)
    turns = _Turns(chunk_index_for(db))
    paired = HybridSearcher(
        turns.view("first"), HashEmbedder(), vector_index=turns.view("second", fail=True)
    )
    with pytest.raises(RuntimeError, match="vector side down"):
        await paired.search("bread oven", owner, None, 4)
    assert turns.in_flight == 0  # the keyword side finished or was cancelled, not left running
