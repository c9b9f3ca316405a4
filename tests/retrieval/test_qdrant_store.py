"""The chunk index with Qdrant as its vector half, on qdrant-client's embedded mode.

Every store-interface test of test_stores.py runs here again with `chunk_index_for` handing
out a Qdrant-backed index (rows and keywords in SQLite / PostgreSQL, vectors in a fresh
in-memory Qdrant per test); the tests below cover what only Qdrant has: deferred deletes,
orphan points, the sweep, the collection's dimension.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import AsyncQdrantClient, models
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from botgpt.config import Settings
from botgpt.documents.service import build_chunk_indexes
from botgpt.retrieval.indexes import ChunkIndexes
from botgpt.retrieval.qdrant_store import (
    INDEXED_AT,
    QdrantChunkIndex,
    QdrantVectors,
    connect_qdrant,
)
from botgpt.retrieval.stores import ChunkRecord
from tests.retrieval import test_stores

# The interface tests of test_stores.py, collected here again (with the fixture below they
# run on the Qdrant-backed index). Its DDL and PostgreSQL ranking tests stay there only.
from tests.retrieval.test_stores import (
    PASSAGES,
    add_document,
    embedder,
    test_add_and_count,  # noqa: F401
    test_delete_document_removes_rows_vectors_and_keywords,  # noqa: F401
    test_delete_of_rows_by_another_path_cleans_the_side_tables,  # noqa: F401
    test_idf_weighting_prefers_the_rare_term,  # noqa: F401
    test_keyword_query_is_not_an_injection_vector,  # noqa: F401
    test_keyword_search_ranks_known_passage_first,  # noqa: F401
    test_owner_and_document_filters,  # noqa: F401
    test_vector_filter_is_applied_inside_the_knn,  # noqa: F401
    test_vector_search_returns_nearest,  # noqa: F401
    test_wrong_dimension_is_rejected,  # noqa: F401
)


@pytest.fixture
async def vectors() -> AsyncIterator[QdrantVectors]:
    """A fresh embedded (in-memory) Qdrant collection."""
    store = QdrantVectors(AsyncQdrantClient(location=":memory:"), "chunks_test", local=True)
    yield store
    await store.close()


@pytest.fixture(autouse=True)
def qdrant_backed(monkeypatch: pytest.MonkeyPatch, vectors: QdrantVectors) -> ChunkIndexes:
    """Make the interface tests' `chunk_index_for` return the Qdrant-backed index."""
    indexes = ChunkIndexes(vectors)

    def bind(db: Any, *, dimension: int = 384, **options: Any) -> QdrantChunkIndex:
        index = indexes.bind(db, dimension=dimension)
        assert isinstance(index, QdrantChunkIndex)
        return index

    monkeypatch.setattr(test_stores, "chunk_index_for", bind)
    return indexes


def index_on(db: AsyncConnection, indexes: ChunkIndexes) -> QdrantChunkIndex:
    index = indexes.bind(db)
    assert isinstance(index, QdrantChunkIndex)
    return index


def new_id() -> str:
    return str(uuid.uuid4())


async def points_of(vectors: QdrantVectors, **payload: str) -> set[str]:
    must: list[models.Condition] = [
        models.FieldCondition(key=key, match=models.MatchValue(value=value))
        for key, value in payload.items()
    ]
    records, _ = await vectors.client.scroll(
        vectors.collection, scroll_filter=models.Filter(must=must), limit=10_000
    )
    return {str(r.id) for r in records}


async def test_vectors_are_searched_in_qdrant(
    db: AsyncConnection, qdrant_backed: ChunkIndexes, vectors: QdrantVectors
) -> None:
    """The points exist with their payload, and search answers from them, not the database."""
    index = index_on(db, qdrant_backed)
    owner = new_id()
    doc = await add_document(index, owner, PASSAGES)
    assert len(await points_of(vectors, owner_id=owner, document_id=doc)) == len(PASSAGES)
    query = await embedder.embed_query(PASSAGES[1])
    assert (await index.vector_search(query, owner, None, 1))[0].text == PASSAGES[1]
    await vectors.client.delete(
        vectors.collection, points_selector=models.FilterSelector(filter=models.Filter())
    )
    assert await index.vector_search(query, owner, None, 5) == []
    assert await index.count(owner_id=owner) == len(PASSAGES)  # rows stay in the database


async def test_owner_filter_never_leaks_and_never_comes_back_short(
    db: AsyncConnection, qdrant_backed: ChunkIndexes
) -> None:
    """Ten owners with near-identical vectors: each search sees its owner's chunks only, k of
    them when k exist, and the same ones exact search ranks first."""
    index = index_on(db, qdrant_backed)
    rng = np.random.default_rng(7)
    base = rng.standard_normal(384).astype(np.float32)
    owners = [new_id() for _ in range(10)]
    own: dict[str, dict[str, np.ndarray]] = {o: {} for o in owners}
    for n, owner in enumerate(owners):
        count = 3 if n == 0 else 40  # one small owner among big ones
        records = []
        document_id = new_id()
        for ordinal in range(count):
            vector = (base + 0.3 * rng.standard_normal(384)).astype(np.float32)
            chunk_id = new_id()
            own[owner][chunk_id] = vector
            records.append(
                ChunkRecord(chunk_id, document_id, owner, ordinal, f"t{ordinal}", vector, 0, 2)
            )
        await index.add(records, embedding_model="test")
    for owner in owners:
        chunks = own[owner]
        for k in (1, 10, 50):
            hits = await index.vector_search(base, owner, None, k)
            assert {h.owner_id for h in hits} == {owner}
            assert len(hits) == min(k, len(chunks))
            ids = list(chunks)
            matrix = np.stack([chunks[i] for i in ids])
            cosine = matrix @ base / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(base))
            expected = [ids[i] for i in np.argsort(-cosine)[: len(hits)]]
            assert [h.chunk_id for h in hits] == expected
    assert len(await index.vector_search(base, None, None, 100)) == 100


async def test_deleted_rows_lose_their_points_after_commit(
    db: AsyncConnection, qdrant_backed: ChunkIndexes, vectors: QdrantVectors
) -> None:
    index = index_on(db, qdrant_backed)
    alice, bob = new_id(), new_id()
    doc = await add_document(index, alice, PASSAGES)
    keep = await add_document(index, alice, PASSAGES[:2])
    await add_document(index, bob, PASSAGES)
    await index.delete_document(doc)
    # Until the caller commits, the points stay (a rollback would need them) but the rows
    # are gone in this transaction, so search already skips them.
    assert len(await points_of(vectors, document_id=doc)) == len(PASSAGES)
    query = await embedder.embed_query(PASSAGES[0])
    assert {h.document_id for h in await index.vector_search(query, alice, None, 10)} == {keep}
    await index.committed()
    assert await points_of(vectors, document_id=doc) == set()
    assert len(await points_of(vectors, document_id=keep)) == 2
    await index.delete_owner(alice)
    await index.committed()
    assert await points_of(vectors, owner_id=alice) == set()
    assert len(await points_of(vectors, owner_id=bob)) == len(PASSAGES)


async def test_an_unreachable_qdrant_does_not_fail_a_committed_delete(
    db: AsyncConnection,
    qdrant_backed: ChunkIndexes,
    vectors: QdrantVectors,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rows are gone once committed: the points' deletion may fail (the sweep finishes)."""
    index = index_on(db, qdrant_backed)
    doc = await add_document(index, new_id(), PASSAGES)

    async def down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("qdrant is down")

    monkeypatch.setattr(vectors, "delete_ids", down)
    assert await index.delete_document(doc) == len(PASSAGES)
    await index.committed()  # logged, not raised
    assert len(await points_of(vectors, document_id=doc)) == len(PASSAGES)


async def test_orphan_points_are_skipped_and_search_pages_on(
    db: AsyncConnection, qdrant_backed: ChunkIndexes, vectors: QdrantVectors
) -> None:
    """Points whose rows never committed rank first, yet k real rows come back."""
    index = index_on(db, qdrant_backed)
    owner = new_id()
    await add_document(index, owner, PASSAGES)
    query = await embedder.embed_query(PASSAGES[3])
    ghost_doc = new_id()
    await vectors.upsert(
        [(new_id(), owner, ghost_doc, query.astype(np.float32)) for _ in range(30)], 384
    )
    hits = await index.vector_search(query, owner, None, 3)
    assert len(hits) == 3 and hits[0].text == PASSAGES[3]
    assert ghost_doc not in {h.document_id for h in hits}


async def test_sweep_removes_old_orphans_only(
    db: AsyncConnection, qdrant_backed: ChunkIndexes, vectors: QdrantVectors
) -> None:
    """The sweep reads committed rows through its own connections: commit some first."""
    engine = db.engine  # `db` itself stays idle, so its open transaction locks nothing
    owner = new_id()
    async with engine.begin() as conn:
        doc = await add_document(index_on(conn, qdrant_backed), owner, PASSAGES)
    try:
        orphan_old, orphan_new = new_id(), new_id()
        vector = (await embedder.embed_query("x")).astype(np.float32)
        await vectors.upsert(
            [(orphan_old, owner, doc, vector), (orphan_new, owner, doc, vector)], 384
        )
        await vectors.client.set_payload(
            vectors.collection, {INDEXED_AT: time.time() - 7200}, points=[orphan_old]
        )
        assert await qdrant_backed.sweep(engine) == 1  # the young orphan may be mid-commit
        remaining = await points_of(vectors, owner_id=owner)
        assert orphan_old not in remaining and orphan_new in remaining
        assert len(remaining) == len(PASSAGES) + 1
        assert await vectors.sweep_orphans(engine, grace_seconds=-1) == 1
        assert len(await points_of(vectors, owner_id=owner)) == len(PASSAGES)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM chunks WHERE owner_id = :o"), {"o": owner})


async def test_replace_embeddings_rewrites_the_points(
    db: AsyncConnection, qdrant_backed: ChunkIndexes
) -> None:
    index = index_on(db, qdrant_backed)
    owner = new_id()
    await add_document(index, owner, PASSAGES)
    texts = await index.chunk_texts(
        (await index.vector_search(await embedder.embed_query(PASSAGES[0]), owner, None, 1))[
            0
        ].document_id
    )
    # Give chunk 0 the vector of passage 4's text: a search for passage 4 now finds chunk 0.
    target = await embedder.embed_query(PASSAGES[4])
    await index.replace_embeddings([(texts[0][0], target)], embedding_model="other")
    hits = await index.vector_search(target, owner, None, 2)
    assert {h.chunk_id for h in hits} == {texts[0][0], texts[4][0]}
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)


async def test_collection_of_another_dimension_is_refused(vectors: QdrantVectors) -> None:
    await vectors.client.create_collection(
        vectors.collection,
        vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE),
    )
    with pytest.raises(ValueError, match="8-dimensional"):
        await vectors.upsert([(new_id(), "o", "d", np.ones(384, dtype=np.float32))], 384)


def test_settings_need_a_qdrant_location() -> None:
    with pytest.raises(ValueError, match="BOTGPT_QDRANT_URL"):
        Settings(_env_file=None, vector_store="qdrant")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="restart"):
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            environment="production",
            jwt_secret="x" * 40,
            vector_store="qdrant",
            qdrant_url=":memory:",
        )
    chosen = Settings(_env_file=None, vector_store="qdrant", qdrant_url=":memory:")  # type: ignore[call-arg]
    assert build_chunk_indexes(chosen).store == "qdrant"
    assert build_chunk_indexes(Settings(_env_file=None)).store == "database"  # type: ignore[call-arg]


async def test_embedded_folder_keeps_points_across_restarts(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, vector_store="qdrant", qdrant_path=tmp_path / "q")  # type: ignore[call-arg]
    first = build_chunk_indexes(settings).vectors
    assert first is not None and first.local
    chunk = new_id()
    await first.upsert([(chunk, "o", "d", np.ones(384, dtype=np.float32))], 384)
    await first.close()
    again = build_chunk_indexes(settings).vectors
    assert again is not None
    try:
        other = new_id()
        assert await again.missing([chunk, other]) == {other}
        assert await again.count() == 1
    finally:
        await again.close()


async def test_an_unreachable_server_is_reported_not_ready() -> None:
    store = connect_qdrant("http://127.0.0.1:9", timeout_seconds=1)
    try:
        assert not await store.healthy()
    finally:
        await store.close()


async def test_server_mode_creates_payload_indexes_and_tunes_the_search(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a server is asked for (the embedded client accepts but ignores it): keyword
    payload indexes on owner_id (the tenant key) and document_id, and an hnsw_ef per query."""
    store = QdrantVectors(AsyncQdrantClient(location=":memory:"), "server_like", local=False)
    indexes: dict[str, Any] = {}
    searches: list[Any] = []
    create_index, query = store.client.create_payload_index, store.client.query_points

    async def record_index(collection: str, field: str, **kwargs: Any) -> Any:
        indexes[field] = kwargs["field_schema"]
        return await create_index(collection, field, **kwargs)

    async def record_query(collection: str, **kwargs: Any) -> Any:
        searches.append(kwargs)
        return await query(collection, **kwargs)

    monkeypatch.setattr(store.client, "create_payload_index", record_index)
    monkeypatch.setattr(store.client, "query_points", record_query)
    try:
        with pytest.warns(UserWarning):  # the embedded client says it ignores both
            owner, vector = new_id(), np.ones(384, dtype=np.float32)
            await store.upsert([(new_id(), owner, new_id(), vector)], 384)
            assert len(await store.search(vector, owner, None, 60)) == 1
    finally:
        await store.close()
    owner_index = indexes["owner_id"]
    assert isinstance(owner_index, models.KeywordIndexParams) and owner_index.is_tenant
    assert indexes["document_id"] == models.PayloadSchemaType.KEYWORD
    assert searches[0]["search_params"].hnsw_ef == 128
    must = searches[0]["query_filter"].must
    assert [(c.key, c.match.value) for c in must] == [("owner_id", owner)]
