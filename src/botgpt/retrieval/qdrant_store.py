"""Qdrant as the vector half of the chunk index (``BOTGPT_VECTOR_STORE=qdrant``).

Chunk rows (text, offsets, pages) and the keyword index stay in the database, written by the
database's own ``ChunkIndex`` (which also keeps its copy of each vector: the schema needs it,
and it lets an operator switch back without re-embedding). Vector search goes to one Qdrant
collection (cosine; point id = chunk id; payload ``owner_id`` and ``document_id``, both with
keyword payload indexes, ``owner_id`` as the tenant key), filtered inside Qdrant's search.

Qdrant is not part of the database transaction, so the order of writes keeps the two
consistent: points are written before the rows commit (a point whose row never committed is
an orphan that search ignores, since every hit is joined to its row, and that `sweep_orphans`
removes later); points are deleted only after the rows' deletion committed (``committed``),
so a rolled-back delete never leaves rows without vectors.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from qdrant_client import AsyncQdrantClient, models
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from botgpt.retrieval.stores import (
    CheckedVectors,
    ChunkIndex,
    ChunkRecord,
    ScoredChunk,
    scored_row,
)

log = logging.getLogger("botgpt.qdrant")

OWNER, DOCUMENT, INDEXED_AT = "owner_id", "document_id", "indexed_at"
_WRITE_BATCH = 256  # points per upsert, ids per delete request
_SCAN_BATCH = 1000  # points per page when sweeping
ORPHAN_GRACE_SECONDS = 3600.0  # a point younger than this may belong to an open transaction

_ROWS_SQL = text(
    "SELECT id, document_id, owner_id, ordinal, text, heading, page, char_start, char_end, "
    "page_end, page_breaks FROM chunks WHERE id IN :ids"
).bindparams(bindparam("ids", expanding=True))
_EXISTING_SQL = text("SELECT id FROM chunks WHERE id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)
_OWNERS_SQL = text("SELECT id, owner_id, document_id FROM chunks WHERE id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)


class QdrantVectors:
    """One Qdrant collection of chunk vectors, shared by the whole process.

    The collection (and its payload indexes) is created on first use with the dimension of the
    first vectors; an existing collection of another size is refused rather than mixed.
    """

    def __init__(
        self, client: AsyncQdrantClient, collection: str, *, local: bool = False, hnsw_ef: int = 128
    ) -> None:
        self.client = client
        self.collection = collection
        self.local = local  # embedded mode: exact search, no payload indexes, no search params
        self.hnsw_ef = hnsw_ef
        self._dimension: int | None = None
        self._lock = asyncio.Lock()

    async def ensure(self, dimension: int) -> None:
        """Create the collection and payload indexes if missing; check the vector size."""
        if self._dimension == dimension:
            return
        async with self._lock:
            if self._dimension is None:
                await self._create(dimension)
                self._dimension = await self._stored_dimension()
        if self._dimension != dimension:
            raise ValueError(
                f"Qdrant collection {self.collection!r} holds {self._dimension}-dimensional "
                f"vectors; the embedding model makes {dimension}-dimensional ones"
            )

    async def _create(self, dimension: int) -> None:
        if not await self.client.collection_exists(self.collection):
            try:
                await self.client.create_collection(
                    self.collection,
                    vectors_config=models.VectorParams(
                        size=dimension, distance=models.Distance.COSINE
                    ),
                )
            except Exception:
                # Another process may have created it between the check and the create.
                if not await self.client.collection_exists(self.collection):
                    raise
        if self.local:
            return  # the embedded mode scans exactly and ignores payload indexes (it warns)
        # Idempotent: creating an index that exists is a no-op on the server.
        await self.client.create_payload_index(
            self.collection,
            OWNER,
            field_schema=models.KeywordIndexParams(
                type=models.KeywordIndexType.KEYWORD, is_tenant=True
            ),
        )
        await self.client.create_payload_index(
            self.collection, DOCUMENT, field_schema=models.PayloadSchemaType.KEYWORD
        )

    async def _stored_dimension(self) -> int:
        info = await self.client.get_collection(self.collection)
        params = info.config.params.vectors
        if not isinstance(params, models.VectorParams):
            raise ValueError(f"Qdrant collection {self.collection!r} has named vectors")
        return int(params.size)

    async def upsert(
        self, points: Sequence[tuple[str, str, str, NDArray[np.float32]]], dimension: int
    ) -> None:
        """Write (chunk id, owner id, document id, vector) points; returns once searchable."""
        if not points:
            return
        await self.ensure(dimension)
        now = time.time()
        for start in range(0, len(points), _WRITE_BATCH):
            batch = points[start : start + _WRITE_BATCH]
            await self.client.upsert(
                self.collection,
                points=models.Batch(
                    ids=[p[0] for p in batch],
                    vectors=np.stack([p[3] for p in batch]).tolist(),
                    payloads=[{OWNER: p[1], DOCUMENT: p[2], INDEXED_AT: now} for p in batch],
                ),
                wait=True,
            )

    async def search(
        self,
        vector: NDArray[np.float32],
        owner_id: str | None,
        document_ids: Sequence[str] | None,
        limit: int,
        offset: int = 0,
    ) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the nearest points passing the filters."""
        await self.ensure(int(vector.shape[0]))
        params = None
        if not self.local:
            params = models.SearchParams(hnsw_ef=max(self.hnsw_ef, limit + offset))
        response = await self.client.query_points(
            self.collection,
            query=vector.tolist(),
            query_filter=_filter(owner_id, document_ids),
            search_params=params,
            limit=limit,
            offset=offset or None,
            with_payload=False,
        )
        return [(str(point.id), float(point.score)) for point in response.points]

    async def delete_ids(self, ids: Sequence[str]) -> None:
        """Delete points by chunk id (missing ones are ignored)."""
        if not ids or not await self._exists():
            return
        for start in range(0, len(ids), _WRITE_BATCH):
            await self.client.delete(
                self.collection,
                points_selector=models.PointIdsList(points=list(ids[start : start + _WRITE_BATCH])),
                wait=True,
            )

    async def delete_owner(self, owner_id: str) -> None:
        """Delete every point of an owner."""
        if await self._exists():
            await self.client.delete(
                self.collection,
                points_selector=models.FilterSelector(filter=_filter(owner_id, None)),
                wait=True,
            )

    async def missing(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` that have no point."""
        if not ids:
            return set()
        if not await self._exists():
            return set(ids)
        found = await self.client.retrieve(
            self.collection, ids=list(ids), with_payload=False, with_vectors=False
        )
        return set(ids) - {str(record.id) for record in found}

    async def count(self) -> int:
        """Number of points in the collection (0 if it does not exist yet)."""
        if not await self._exists():
            return 0
        return int((await self.client.count(self.collection, exact=True)).count)

    async def sweep_orphans(
        self, engine: AsyncEngine, grace_seconds: float = ORPHAN_GRACE_SECONDS
    ) -> int:
        """Delete points older than ``grace_seconds`` whose chunk row no longer exists.

        Such points come from transactions that rolled back after writing them, from rows
        deleted by a cascade, or from a process that stopped between commit and delete.
        Returns how many were deleted.
        """
        if not await self._exists():
            return 0
        cutoff = time.time() - grace_seconds
        removed = 0
        offset: Any = None
        while True:
            records, offset = await self.client.scroll(
                self.collection,
                limit=_SCAN_BATCH,
                offset=offset,
                with_payload=[INDEXED_AT],
                with_vectors=False,
            )
            old = [
                str(r.id)
                for r in records
                if float((r.payload or {}).get(INDEXED_AT, 0.0)) <= cutoff
            ]
            if old:
                async with engine.connect() as conn:
                    present = {row[0] for row in await conn.execute(_EXISTING_SQL, {"ids": old})}
                orphans = [point for point in old if point not in present]
                await self.delete_ids(orphans)
                removed += len(orphans)
            if offset is None:
                break
        if removed:
            log.info("deleted %d orphan Qdrant points", removed)
        return removed

    async def drop(self) -> None:
        """Delete the whole collection."""
        if await self.client.collection_exists(self.collection):
            await self.client.delete_collection(self.collection)
        self._dimension = None

    async def healthy(self) -> bool:
        """Whether Qdrant answers (the collection may not exist yet)."""
        try:
            await self.client.collection_exists(self.collection)
        except Exception:  # unreachable, refused, timed out: logged, not returned
            log.warning("Qdrant does not answer", exc_info=True)
            return False
        return True

    async def close(self) -> None:
        """Close the client's connections."""
        await self.client.close()

    async def _exists(self) -> bool:
        return self._dimension is not None or await self.client.collection_exists(self.collection)


def _filter(owner_id: str | None, document_ids: Sequence[str] | None) -> models.Filter | None:
    must: list[models.Condition] = []
    if owner_id is not None:
        must.append(models.FieldCondition(key=OWNER, match=models.MatchValue(value=owner_id)))
    if document_ids is not None:
        must.append(
            models.FieldCondition(key=DOCUMENT, match=models.MatchAny(any=list(document_ids)))
        )
    return models.Filter(must=must) if must else None


def connect_qdrant(
    url: str,
    *,
    api_key: str | None = None,
    path: str | None = None,
    collection: str = "botgpt_chunks",
    timeout_seconds: int = 10,
) -> QdrantVectors:
    """A ``QdrantVectors`` on a server (``url``), in memory (``':memory:'``) or in ``path``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # api key over http: the operator's call
        if path:
            client = AsyncQdrantClient(path=path)
        elif url == ":memory:":
            client = AsyncQdrantClient(location=":memory:")
        else:
            # No version check: it is a blocking request made in the constructor.
            client = AsyncQdrantClient(
                url=url, api_key=api_key, timeout=timeout_seconds, check_compatibility=False
            )
    return QdrantVectors(client, collection, local=bool(path) or url == ":memory:")


class QdrantChunkIndex(ChunkIndex):
    """A database ``ChunkIndex`` whose vector search is answered by Qdrant.

    Rows and keyword entries are the inner (database) index's; every write also goes to
    Qdrant, every vector search comes from Qdrant and is joined to the rows in one query.
    """

    def __init__(self, inner: ChunkIndex, vectors: QdrantVectors) -> None:
        super().__init__(inner.db, dimension=inner.dimension)
        self.inner = inner
        self.vectors = vectors
        self.dialect = inner.dialect
        self._deleted_ids: list[str] = []
        self._deleted_owners: list[str] = []

    async def add(self, chunks: Sequence[ChunkRecord], *, embedding_model: str) -> None:
        """Write the points first, then the rows (which commit with the caller)."""
        if not chunks:
            return
        points = []
        for chunk in chunks:
            vector = self._checked(chunk.embedding)
            points.append((chunk.id, chunk.owner_id, chunk.document_id, vector))
        await self.vectors.upsert(points, self.dimension)
        await self.inner.add(chunks, embedding_model=embedding_model)

    async def chunk_texts(self, document_id: str) -> list[tuple[str, str, str]]:
        """(chunk id, heading, text) of a document's chunks in order."""
        return await self.inner.chunk_texts(document_id)

    async def _replace_checked(self, vectors: CheckedVectors, embedding_model: str) -> None:
        """Overwrite the points of existing chunks, then their database vectors and model."""
        result = await self.db.execute(_OWNERS_SQL, {"ids": [chunk_id for chunk_id, _ in vectors]})
        meta = {row[0]: (row[1], row[2]) for row in result.all()}
        await self.vectors.upsert(
            [(cid, *meta[cid], vector) for cid, vector in vectors if cid in meta], self.dimension
        )
        await self.inner._replace_checked(vectors, embedding_model)  # checked once, here

    async def delete_document(self, document_id: str) -> int:
        """Delete the rows now; their points go in ``committed``."""
        result = await self.db.execute(
            text("SELECT id FROM chunks WHERE document_id = :d"), {"d": document_id}
        )
        ids = [row[0] for row in result.all()]
        removed = await self.inner.delete_document(document_id)
        self._deleted_ids += ids
        return removed

    async def delete_owner(self, owner_id: str) -> int:
        """Delete the owner's rows now; every point of the owner goes in ``committed``."""
        removed = await self.inner.delete_owner(owner_id)
        self._deleted_owners.append(owner_id)
        return removed

    async def committed(self) -> None:
        """Delete the points of the rows this transaction deleted.

        The rows are gone already, so a failure here only leaves orphan points (never shown:
        search joins points to rows); it is logged and left to the sweep, not raised.
        """
        ids, self._deleted_ids = self._deleted_ids, []
        owners, self._deleted_owners = self._deleted_owners, []
        try:
            await self.vectors.delete_ids(ids)
            for owner_id in owners:
                await self.vectors.delete_owner(owner_id)
        except Exception:
            log.warning("Qdrant points of deleted chunks left to the sweep", exc_info=True)
        await self.inner.committed()

    async def keyword_search(
        self, query: str, owner_id: str | None, document_ids: Sequence[str] | None, k: int
    ) -> list[ScoredChunk]:
        """The database's keyword search."""
        return await self.inner.keyword_search(query, owner_id, document_ids, k)

    async def vector_search(
        self,
        embedding: Sequence[float] | NDArray[np.float32],
        owner_id: str | None,
        document_ids: Sequence[str] | None,
        k: int,
    ) -> list[ScoredChunk]:
        """Qdrant's filtered nearest points joined to their rows, in Qdrant's order.

        A point without a row (an orphan) is skipped and the search pages on, so ``k`` rows
        come back whenever ``k`` exist. The owner and document filters are applied again to
        the rows: a stale payload can never hand out another owner's chunk.
        """
        vector = self._query_vector(embedding, document_ids, k)
        if vector is None:
            return []
        allowed = set(document_ids) if document_ids is not None else None
        found: list[ScoredChunk] = []
        offset, limit = 0, k + max(8, k // 4)
        while True:
            hits = await self.vectors.search(vector, owner_id, document_ids, limit, offset)
            if hits:
                result = await self.db.execute(_ROWS_SQL, {"ids": [chunk for chunk, _ in hits]})
                rows = {row[0]: row for row in result.all()}
                for chunk_id, score in hits:
                    row = rows.get(chunk_id)
                    if row is None or (owner_id is not None and row[2] != owner_id):
                        continue
                    if allowed is not None and row[1] not in allowed:
                        continue
                    found.append(scored_row(row, score))
            if len(found) >= k or len(hits) < limit:
                return found[:k]
            offset += limit
            limit *= 2

    async def count(self, *, owner_id: str | None = None, document_id: str | None = None) -> int:
        """Number of chunk rows (the database is the source of truth)."""
        return await self.inner.count(owner_id=owner_id, document_id=document_id)
