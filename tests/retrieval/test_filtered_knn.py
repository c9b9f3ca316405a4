"""Vector and keyword search at the edges scale brings, on SQLite and PostgreSQL.

SQLite scans compact (bit) vectors and rescores the candidates exactly; these tests pin that
the results are the exact ones, and that an owner's search is neither polluted nor cut short
by many other owners holding near-identical chunks.
"""

from __future__ import annotations

import uuid

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.ext.asyncio import AsyncConnection

from botgpt.retrieval.stores import ChunkIndex, ChunkRecord, chunk_index_for

DIM = 384


def _unit(rows: NDArray[np.float64]) -> NDArray[np.float32]:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


async def _add(
    index: ChunkIndex,
    owner: str,
    vectors: NDArray[np.float32],
    texts: list[str],
    document_id: str | None = None,
) -> list[str]:
    document_id = document_id or str(uuid.uuid4())
    ids = [str(uuid.uuid4()) for _ in texts]
    await index.add(
        [
            ChunkRecord(
                id=chunk_id,
                document_id=document_id,
                owner_id=owner,
                ordinal=i,
                text=text,
                embedding=vector,
                char_start=0,
                char_end=len(text),
            )
            for i, (chunk_id, text, vector) in enumerate(zip(ids, texts, vectors, strict=True))
        ],
        embedding_model="test",
    )
    return ids


async def test_compact_search_returns_the_exact_top_results(db: AsyncConnection) -> None:
    """Clusters of close vectors: the top 10 (ids, order and scores) equal exact cosine's."""
    rng = np.random.default_rng(7)
    index = chunk_index_for(db)
    owner = str(uuid.uuid4())
    centers = rng.normal(size=(12, DIM))
    vectors = _unit(np.repeat(centers, 15, axis=0) + 0.6 * rng.normal(size=(180, DIM)))
    ids = await _add(index, owner, vectors, [f"passage {i}" for i in range(180)])
    queries = _unit(centers + 0.3 * rng.normal(size=centers.shape))
    for query in queries:
        exact = np.argsort(-(vectors @ query), kind="stable")[:10]
        hits = await index.vector_search(query, owner, None, 10)
        assert [h.chunk_id for h in hits] == [ids[i] for i in exact]
        assert np.allclose([h.score for h in hits], (vectors @ query)[exact], atol=1e-4)


async def test_owner_filter_among_near_identical_chunks(db: AsyncConnection) -> None:
    """30 other owners hold copies of the owner's chunks (the same text, vectors 0.999 alike):
    filtered searches return only the owner's chunks and as many as asked when they exist."""
    rng = np.random.default_rng(11)
    index = chunk_index_for(db)
    owner = str(uuid.uuid4())
    base = _unit(rng.normal(size=(12, DIM)))
    texts = [f"mitochondria membrane potential study {i}" for i in range(12)]
    scoped_doc = str(uuid.uuid4())
    mine = await _add(index, owner, base[:4], texts[:4], document_id=scoped_doc)
    mine += await _add(index, owner, base[4:], texts[4:])
    for _ in range(30):
        copies = _unit(base + 0.001 * rng.normal(size=base.shape))
        await _add(index, str(uuid.uuid4()), copies, texts)
    query = base[0]
    vector_hits = await index.vector_search(query, owner, None, 10)
    keyword_hits = await index.keyword_search("mitochondria membrane study", owner, None, 10)
    for hits in (vector_hits, keyword_hits):
        assert len(hits) == 10
        assert {h.owner_id for h in hits} == {owner}
        assert set(h.chunk_id for h in hits) <= set(mine)
    assert vector_hits[0].chunk_id == mine[0]
    # All of the owner's chunks when k exceeds them; only the scoped document's when scoped.
    assert {h.chunk_id for h in await index.vector_search(query, owner, None, 50)} == set(mine)
    scoped = await index.vector_search(query, owner, [scoped_doc], 10)
    assert [h.chunk_id for h in scoped] == mine[:1] + sorted(
        mine[1:4], key=lambda c: -float(base[mine.index(c)] @ query)
    )
    scoped_kw = await index.keyword_search("mitochondria", owner, [scoped_doc], 10)
    assert {h.chunk_id for h in scoped_kw} == set(mine[:4])
    # Across owners (admin tools), k results come back from everyone.
    assert len(await index.vector_search(query, None, None, 40)) == 40
