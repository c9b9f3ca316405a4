"""PostgreSQL search at scale: filtered vector search is never short and never leaks, the
half-precision HNSW index finds the exact neighbours, and keyword ranking (term statistics
from ``chunks_terms``, only candidates ranked) orders results as counting every term did."""

from __future__ import annotations

import itertools
import uuid

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from botgpt.retrieval.pg_store import PostgresChunkIndex
from botgpt.retrieval.stores import ChunkRecord, chunk_index_for
from tests.retrieval.test_stores import PASSAGES, add_document

DIM = 384


@pytest.fixture
def pg(db: AsyncConnection) -> AsyncConnection:
    if chunk_index_for(db).dialect != "postgresql":
        pytest.skip("PostgreSQL only")
    return db


def _unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


async def _add_vectors(
    index: PostgresChunkIndex, owner: str, vectors: np.ndarray, document_id: str | None = None
) -> list[str]:
    document_id = document_id or str(uuid.uuid4())
    records = [
        ChunkRecord(
            id=str(uuid.uuid4()),
            document_id=document_id,
            owner_id=owner,
            ordinal=i,
            text=f"passage {i}",
            embedding=vector,
            char_start=0,
            char_end=10,
        )
        for i, vector in enumerate(vectors)
    ]
    await index.add(records, embedding_model="test")
    return [r.id for r in records]


async def _force_index(db: AsyncConnection) -> None:
    # A few hundred rows would otherwise be read sequentially: make the planner use HNSW.
    await db.execute(text("SET LOCAL enable_seqscan = off"))


@pytest.mark.parametrize(
    "options",
    [
        {},  # a small owner: exact scan of their rows
        {"exact_scan_rows": 0},  # HNSW with iterative scan
        {"exact_scan_rows": 0, "iterative_scan": "strict_order"},
        # The iterative scan gives up after 30 tuples: the exact fallback must fill the result.
        {"exact_scan_rows": 0, "max_scan_tuples": 30, "ef_search": 10, "rescore_candidates": 10},
    ],
)
async def test_filtered_vector_search_is_never_short_and_never_leaks(
    pg: AsyncConnection, options: dict[str, object]
) -> None:
    index = PostgresChunkIndex(pg, **options)  # type: ignore[arg-type]
    rng = np.random.default_rng(7)
    centre = rng.normal(size=DIM)
    # 40 owners with near-identical vectors: another owner's chunk is always closer than
    # most of the searched owner's own chunks.
    for _ in range(40):
        await _add_vectors(index, str(uuid.uuid4()), _unit(centre + rng.normal(0, 0.01, (15, DIM))))
    small = str(uuid.uuid4())
    small_doc = str(uuid.uuid4())
    mine = await _add_vectors(
        index, small, _unit(centre + rng.normal(0, 0.01, (12, DIM))), small_doc
    )
    other_doc = str(uuid.uuid4())
    mine += await _add_vectors(
        index, small, _unit(centre + rng.normal(0, 0.01, (3, DIM))), other_doc
    )
    await pg.execute(text("ANALYZE chunks"))
    await _force_index(pg)
    query = _unit(centre[None, :])[0]
    hits = await index.vector_search(query, small, None, 10)
    assert len(hits) == 10
    assert {h.owner_id for h in hits} == {small} and set(h.chunk_id for h in hits) <= set(mine)
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
    # Asking for more than exist returns every one of them, and nothing else.
    hits = await index.vector_search(query, small, None, 50)
    assert sorted(h.chunk_id for h in hits) == sorted(mine)
    scoped = await index.vector_search(query, small, [other_doc], 10)
    assert len(scoped) == 3 and {h.document_id for h in scoped} == {other_doc}
    # Another owner's document id in the scope matches nothing for this owner.
    assert await index.vector_search(query, str(uuid.uuid4()), [small_doc], 10) == []


async def test_half_precision_index_returns_the_exact_top_results(pg: AsyncConnection) -> None:
    index = PostgresChunkIndex(pg, exact_scan_rows=0)
    rng = np.random.default_rng(11)
    # 20 topics of 20 chunks each, like real embeddings: neighbours are distinct, not ties.
    centres = rng.normal(size=(20, DIM))
    vectors = _unit(np.repeat(centres, 20, axis=0) + rng.normal(0, 0.5, (400, DIM)))
    owner = str(uuid.uuid4())
    ids = await _add_vectors(index, owner, vectors)
    await pg.execute(text("ANALYZE chunks"))
    await _force_index(pg)
    plan = await pg.execute(
        text(
            "EXPLAIN SELECT id FROM chunks ORDER BY CAST(embedding AS halfvec(384)) <=> "
            "CAST(:q AS halfvec(384)) LIMIT 10"
        ),
        {"q": "[" + ",".join(["0.1"] * DIM) + "]"},
    )
    assert "ix_chunks_embedding_hnsw_half" in " ".join(row[0] for row in plan.all())
    for q in range(20):
        query = _unit(centres[q][None, :] + rng.normal(0, 0.5, (1, DIM)))[0]
        exact = np.argsort(-(vectors @ query), kind="stable")[:10]
        for owner_filter in (None, owner):
            hits = await index.vector_search(query, owner_filter, None, 10)
            assert [h.chunk_id for h in hits] == [ids[i] for i in exact]
            # Scores are the full-precision cosine similarity, not the half-precision one.
            assert hits[0].score == pytest.approx(float(vectors[exact[0]] @ query), abs=1e-4)


# The ranking before chunks_terms: df counted over the GIN index per term, every match ranked.
_COUNTED_DF_RANKING = """
WITH n AS (SELECT count(*) AS total FROM chunks),
t AS (SELECT qs.q, ln(1.0 + (GREATEST(n.total, d.df) - d.df + 0.5) / (d.df + 0.5)) AS idf
      FROM (SELECT to_tsquery('english', term) AS q FROM unnest(CAST(:terms AS text[])) AS term)
      AS qs CROSS JOIN LATERAL (SELECT count(*) AS df FROM chunks WHERE tsv @@ qs.q) AS d
      CROSS JOIN n WHERE numnode(qs.q) > 0)
SELECT c.id, SUM(t.idf * ts_rank('{0.1,0.2,1.0,1.0}'::float4[], c.tsv, t.q, 1)) AS score
FROM chunks c JOIN t ON c.tsv @@ t.q WHERE c.owner_id = :owner
GROUP BY c.id ORDER BY score DESC, c.id
"""


@pytest.mark.parametrize("scan_filtered_rows", [0, 10**6])  # GIN intersection / owner's rows
async def test_keyword_ranking_matches_counting_every_term(
    pg: AsyncConnection, monkeypatch: pytest.MonkeyPatch, scan_filtered_rows: int
) -> None:
    from botgpt.retrieval import pg_store
    from botgpt.retrieval.keywords import keyword_terms

    monkeypatch.setattr(pg_store, "SCAN_FILTERED_ROWS", scan_filtered_rows)
    index = PostgresChunkIndex(pg)
    owner, other = str(uuid.uuid4()), str(uuid.uuid4())
    # Every passage a different length, so no two share a score (ties would be float noise).
    passages = PASSAGES + [
        "The cell divides; vitamin D and the cell membrane. "
        + "filler words " * i
        + "revolution" * (i % 2)
        for i in range(30)
    ]
    await add_document(index, owner, passages)
    await add_document(index, other, passages[:8])
    for query in (
        "What causes multiple sclerosis?",
        "cell vitamin revolution",
        "mitochondria ATP cell",
        "storming the Bastille in 1789",
    ):
        terms = keyword_terms(query)
        reference = await pg.execute(text(_COUNTED_DF_RANKING), {"terms": terms, "owner": owner})
        expected = [(row[0], float(row[1])) for row in reference.all()][:10]
        hits = await index.keyword_search(query, owner, None, 10)
        assert [h.chunk_id for h in hits] == [chunk_id for chunk_id, _ in expected]
        assert [h.score for h in hits] == pytest.approx([score for _, score in expected])


async def test_candidate_budget_still_ranks_the_rare_term_first(pg: AsyncConnection) -> None:
    """With a budget of one row, only the rarest term's rows are ranked: they still come first."""
    index = PostgresChunkIndex(pg, rank_budget=1)
    owner = str(uuid.uuid4())
    passages = [f"The cell {i} divides and the cell grows." for i in range(20)]
    passages.append("A ribosome sits in the cell.")
    await add_document(index, owner, passages)
    hits = await index.keyword_search("cell ribosome", owner, None, 5)
    assert hits[0].text == "A ribosome sits in the cell."


async def test_term_statistics_follow_inserts_updates_and_deletes(pg: AsyncConnection) -> None:
    index = PostgresChunkIndex(pg)
    owner = str(uuid.uuid4())
    doc = await add_document(index, owner, PASSAGES)
    await add_document(index, owner, PASSAGES[:2])
    await pg.execute(text("UPDATE chunks SET text = 'ribosomes everywhere' WHERE ordinal = 1"))
    await index.delete_document(doc)

    async def stats() -> dict[str, int]:
        rows = await pg.execute(text("SELECT lexeme, df FROM chunks_terms WHERE df <> 0"))
        return {row[0]: int(row[1]) for row in rows.all()}

    counted = await pg.execute(
        text(
            "SELECT word, ndoc FROM ts_stat('SELECT tsv FROM chunks') "
            "UNION ALL SELECT '', count(*) FROM chunks"
        )
    )
    assert await stats() == {row[0]: int(row[1]) for row in counted.all()}
    assert (await stats())[""] == 2


async def test_long_document_scope_is_exact_and_never_short(pg: AsyncConnection) -> None:
    """A scope of many documents (the chat passes every ready one) is applied to the owner's
    results; a scope far from the query still fills k from its own documents."""
    index = PostgresChunkIndex(pg)
    rng = np.random.default_rng(5)
    centre = rng.normal(size=DIM)
    owner = str(uuid.uuid4())
    distances = np.linspace(0.01, 3.0, 200)  # document i lies further from the query as i grows
    documents = [str(uuid.uuid4()) for _ in range(200)]
    for document, spread in zip(documents, distances, strict=True):
        vector = _unit(centre[None, :] + rng.normal(0, spread, (1, DIM)))
        await _add_vectors(index, owner, vector, document)
    await _add_vectors(index, str(uuid.uuid4()), _unit(centre[None, :] + np.zeros((5, DIM))))
    query = _unit(centre[None, :])[0]
    for scope in (documents[:100], documents[-70:]):  # near the query, then the furthest
        hits = await index.vector_search(query, owner, scope, 5)
        exact = await PostgresChunkIndex(pg, exact_scan_rows=10**9).vector_search(
            query, owner, scope[:64], 5
        )
        assert len(hits) == 5 and {h.document_id for h in hits} <= set(scope)
        if scope[0] == documents[0]:
            assert [h.chunk_id for h in hits] == [h.chunk_id for h in exact]
    passages = [f"vitamin cell passage {i}" for i in range(80)]
    for i, passage in enumerate(passages):
        await add_document(index, owner, [passage], documents[i])
    scope = documents[10:80]
    hits = await index.keyword_search("vitamin cell", owner, scope, 10)
    assert len(hits) == 10 and {h.document_id for h in hits} <= set(scope)
