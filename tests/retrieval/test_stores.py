"""ChunkIndex behaviour, identical on SQLite (sqlite-vec + FTS5) and PostgreSQL (pgvector)."""

from __future__ import annotations

import itertools
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from botgpt.retrieval.embedders import HashEmbedder
from botgpt.retrieval.sqlite_store import dimension_from_schema
from botgpt.retrieval.stores import ChunkIndex, ChunkRecord, chunk_index_for, ddl_statements

PASSAGES = [
    "The mitochondria is the powerhouse of the cell and produces ATP.",
    "Photosynthesis converts sunlight, water and carbon dioxide into glucose.",
    "Vitamin D deficiency is associated with a higher risk of multiple sclerosis.",
    "The French Revolution began in 1789 with the storming of the Bastille.",
    "Transformers use self-attention to model relationships between tokens.",
]

embedder = HashEmbedder()


def new_id() -> str:
    return str(uuid.uuid4())


async def add_document(
    index: ChunkIndex, owner_id: str, passages: list[str], document_id: str | None = None
) -> str:
    document_id = document_id or new_id()
    vectors = embedder.embed_sync(passages)
    offset = 0
    records = []
    for ordinal, (passage, vector) in enumerate(zip(passages, vectors, strict=True)):
        records.append(
            ChunkRecord(
                id=new_id(),
                document_id=document_id,
                owner_id=owner_id,
                ordinal=ordinal,
                text=passage,
                embedding=vector,
                char_start=offset,
                char_end=offset + len(passage),
                page=ordinal + 1,
                token_count=len(passage.split()),
                heading="Doc heading",
            )
        )
        offset += len(passage) + 2
    await index.add(records, embedding_model=embedder.name)
    return document_id


async def test_add_and_count(db: AsyncConnection) -> None:
    index = chunk_index_for(db)
    owner = new_id()
    doc = await add_document(index, owner, PASSAGES)
    assert await index.count(owner_id=owner) == len(PASSAGES)
    assert await index.count(document_id=doc) == len(PASSAGES)
    assert await index.count(owner_id=new_id()) == 0


async def test_keyword_search_ranks_known_passage_first(db: AsyncConnection) -> None:
    index = chunk_index_for(db)
    owner = new_id()
    doc = await add_document(index, owner, PASSAGES)
    hits = await index.keyword_search("What causes multiple sclerosis?", owner, None, 3)
    assert hits, "expected a keyword hit"
    first = hits[0]
    assert first.text == PASSAGES[2]
    assert (first.document_id, first.ordinal, first.page) == (doc, 2, 3)
    assert first.char_end - first.char_start == len(PASSAGES[2])
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
    # Stemming: "storm" matches "storming"; the OR query still finds it with extra words.
    hits = await index.keyword_search("storm Bastille prison", owner, None, 3)
    assert hits[0].text == PASSAGES[3]


async def test_keyword_query_is_not_an_injection_vector(db: AsyncConnection) -> None:
    index = chunk_index_for(db)
    owner = new_id()
    await add_document(index, owner, PASSAGES)
    for query in ['"unbalanced', "NEAR(a b) AND OR NOT *", "a & b | !c:*", "'; DROP TABLE chunks"]:
        await index.keyword_search(query, owner, None, 5)  # must not raise
    await index.keyword_search("the of and", owner, None, 5)  # stopwords only: no error
    assert await index.keyword_search("   ", owner, None, 5) == []


async def test_vector_search_returns_nearest(db: AsyncConnection) -> None:
    index = chunk_index_for(db)
    owner = new_id()
    await add_document(index, owner, PASSAGES)
    query = await embedder.embed_query("photosynthesis converts sunlight into glucose")
    hits = await index.vector_search(query, owner, None, 2)
    assert len(hits) == 2
    assert hits[0].text == PASSAGES[1]
    assert 0.0 < hits[0].score <= 1.0 + 1e-6
    assert hits[0].score >= hits[1].score


async def test_owner_and_document_filters(db: AsyncConnection) -> None:
    index = chunk_index_for(db)
    alice, bob = new_id(), new_id()
    alice_doc = await add_document(index, alice, PASSAGES[:3])
    alice_other = await add_document(index, alice, PASSAGES[3:])
    # Bob owns the very same text: a leak would show up as his chunk ranking first.
    bob_doc = await add_document(index, bob, PASSAGES)
    query = await embedder.embed_query(PASSAGES[0])
    for hits in (
        await index.keyword_search("mitochondria ATP cell", alice, None, 50),
        await index.vector_search(query, alice, None, 50),
    ):
        assert hits
        assert {h.owner_id for h in hits} == {alice}
        assert bob_doc not in {h.document_id for h in hits}
    scoped = await index.vector_search(query, alice, [alice_other], 50)
    assert scoped and {h.document_id for h in scoped} == {alice_other}
    scoped = await index.keyword_search("Bastille revolution", alice, [alice_doc], 50)
    assert scoped == []
    assert await index.vector_search(query, alice, [], 5) == []
    # Asking for Bob's document while searching as Alice returns nothing.
    assert await index.vector_search(query, alice, [bob_doc], 5) == []
    assert await index.keyword_search("mitochondria", alice, [bob_doc], 5) == []


async def test_vector_filter_is_applied_inside_the_knn(db: AsyncConnection) -> None:
    """A selective filter still yields k rows (no post-filtering of a short candidate list)."""
    index = chunk_index_for(db)
    owner = new_id()
    target = await add_document(index, owner, [f"filler passage number {i}" for i in range(3)])
    for batch in range(4):
        await add_document(
            index, owner, [f"photosynthesis glucose sunlight {batch} {i}" for i in range(50)]
        )
    query = await embedder.embed_query("photosynthesis glucose sunlight")
    hits = await index.vector_search(query, owner, [target], 3)
    assert len(hits) == 3 and {h.document_id for h in hits} == {target}


async def _leftovers(db: AsyncConnection, dialect: str) -> dict[str, int]:
    tables = ["chunks", "chunks_vec", "chunks_fts"] if dialect == "sqlite" else ["chunks"]
    counts = {}
    for table in tables:
        result = await db.execute(text(f"SELECT COUNT(*) FROM {table}"))
        counts[table] = int(result.scalar_one())
    return counts


async def test_delete_document_removes_rows_vectors_and_keywords(db: AsyncConnection) -> None:
    index = chunk_index_for(db)
    owner = new_id()
    before = await _leftovers(db, index.dialect)
    doc = await add_document(index, owner, PASSAGES)
    keep = await add_document(index, owner, PASSAGES[:2])
    after_add = await _leftovers(db, index.dialect)
    assert all(after_add[t] == before[t] + 7 for t in after_add)
    assert await index.delete_document(doc) == len(PASSAGES)
    assert await _leftovers(db, index.dialect) == {t: before[t] + 2 for t in before}
    query = await embedder.embed_query(PASSAGES[4])
    assert {h.document_id for h in await index.vector_search(query, owner, None, 10)} == {keep}
    assert await index.keyword_search("Bastille", owner, None, 10) == []
    assert await index.delete_document(doc) == 0
    assert await index.delete_owner(owner) == 2
    assert await _leftovers(db, index.dialect) == before


async def test_delete_of_rows_by_another_path_cleans_the_side_tables(db: AsyncConnection) -> None:
    """A cascading FK from documents deletes chunk rows directly; nothing may be orphaned."""
    index = chunk_index_for(db)
    before = await _leftovers(db, index.dialect)
    doc = await add_document(index, new_id(), PASSAGES)
    await db.execute(text("DELETE FROM chunks WHERE document_id = :d"), {"d": doc})
    assert await _leftovers(db, index.dialect) == before


async def test_wrong_dimension_is_rejected(db: AsyncConnection) -> None:
    index = chunk_index_for(db)
    with pytest.raises(ValueError, match="expects 384"):
        await index.vector_search([0.1] * 10, new_id(), None, 3)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_ddl_is_idempotent_text(dialect: str) -> None:
    statements = ddl_statements(dialect, 384)
    idempotent = ("IF NOT EXISTS", "OR REPLACE", "SET STORAGE")
    assert all(any(word in s for word in idempotent) for s in statements)
    if dialect == "sqlite":  # the compact column's size is a multiple of the dimension
        vec = next(s for s in statements if "chunks_vec USING" in s)
        assert dimension_from_schema(vec) == 384
    else:
        assert any("384" in s for s in statements)
    with pytest.raises(ValueError):
        ddl_statements("mysql", 384)


async def test_ddl_can_run_twice(db: AsyncConnection) -> None:
    dialect = chunk_index_for(db).dialect
    for statement in ddl_statements(dialect, 384):
        await db.execute(text(statement))


@pytest.mark.parametrize("rank_function", ["idf_ts_rank", "ts_rank", "ts_rank_cd"])
async def test_postgres_rank_functions(db: AsyncConnection, rank_function: str) -> None:
    if chunk_index_for(db).dialect != "postgresql":
        pytest.skip("PostgreSQL ranking options")
    from botgpt.retrieval.pg_store import PostgresChunkIndex

    index = PostgresChunkIndex(db, rank_function=rank_function)
    owner = new_id()
    await add_document(index, owner, PASSAGES)
    hits = await index.keyword_search("sclerosis vitamin the of", owner, None, 3)
    assert hits[0].text == PASSAGES[2]
    with pytest.raises(ValueError):
        PostgresChunkIndex(db, rank_function="bm25_magic")


async def test_idf_weighting_prefers_the_rare_term(db: AsyncConnection) -> None:
    """'cell' is in every passage, 'ribosome' in one: the rare word must decide the ranking."""
    index = chunk_index_for(db)
    owner = new_id()
    passages = [f"The cell {i} divides and the cell grows, cell after cell." for i in range(8)]
    passages.append("A ribosome sits in the cell.")
    await add_document(index, owner, passages)
    hits = await index.keyword_search("cell ribosome", owner, None, 3)
    assert hits[0].text == "A ribosome sits in the cell."
