"""The chunk index: one interface, a SQLite (sqlite-vec + FTS5) and a PostgreSQL (pgvector +
tsvector) implementation, both speaking SQL text through the application's SQLAlchemy engine.

The index never commits: every method runs inside the caller's transaction (an
``AsyncConnection`` from ``engine.begin()`` or an ``AsyncSession``), so an ingestion job can
write the document row, its chunks and its status atomically, and a crash leaves no orphans.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import text

__all__ = [
    "ChunkIndex",
    "ChunkRecord",
    "DBExecutor",
    "ScoredChunk",
    "chunk_index_for",
    "ddl_statements",
]


class DBExecutor(Protocol):
    """What the index needs from an ``AsyncConnection`` or ``AsyncSession``."""

    async def execute(self, statement: Any, parameters: Any = None, /) -> Any:
        """Execute a statement (a list of dicts as parameters means executemany)."""


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """One chunk to index; ``id`` is chosen by the caller (a UUID string, 36 chars max)."""

    id: str
    document_id: str
    owner_id: str
    ordinal: int
    text: str
    embedding: Sequence[float] | NDArray[np.float32]
    char_start: int
    char_end: int
    page: int | None = None
    token_count: int = 0
    heading: str = ""
    page_end: int | None = None
    page_breaks: Sequence[tuple[int, int]] = ()  # (offset in text, page) of pages starting inside


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    """A chunk returned by a search; higher ``score`` is better within one result list."""

    chunk_id: str
    document_id: str
    owner_id: str
    ordinal: int
    text: str
    heading: str
    page: int | None
    char_start: int
    char_end: int
    score: float
    page_end: int | None = None
    page_breaks: tuple[tuple[int, int], ...] = ()


def encode_page_breaks(breaks: Sequence[tuple[int, int]]) -> str:
    """The stored form of a chunk's page breaks: "offset:page" pairs joined by commas."""
    return ",".join(f"{offset}:{page}" for offset, page in breaks)


def page_at(first_page: int | None, breaks: Sequence[tuple[int, int]], offset: int) -> int | None:
    """The page of a character offset in a chunk that starts on `first_page` and whose
    later pages start at `breaks` ((offset, page), in order)."""
    page = first_page
    for start, number in breaks:
        if start > offset:
            break
        page = number
    return page


def scored_row(row: Any, score: float) -> ScoredChunk:
    """A search result from a row whose first 11 columns are the stores' chunk columns (id,
    document_id, owner_id, ordinal, text, heading, page, char_start, char_end, page_end,
    page_breaks)."""
    return ScoredChunk(
        chunk_id=row[0],
        document_id=row[1],
        owner_id=row[2],
        ordinal=row[3],
        text=row[4],
        heading=row[5],
        page=row[6],
        char_start=row[7],
        char_end=row[8],
        page_end=row[9],
        page_breaks=decode_page_breaks(row[10]),
        score=score,
    )


def decode_page_breaks(raw: str | None) -> tuple[tuple[int, int], ...]:
    """Page breaks from their stored form (empty for chunks on a single page)."""
    if not raw:
        return ()
    pairs = (item.split(":", 1) for item in raw.split(","))
    return tuple((int(offset), int(page)) for offset, page in pairs)


# (chunk id, vector) pairs whose vectors have the index's dimension.
CheckedVectors = list[tuple[str, NDArray[np.float32]]]


class ChunkIndex(abc.ABC):
    """Stores chunks with their embedding and keyword index; searches them per owner.

    Implementations keep rows, vectors and keyword entries consistent: ``add`` writes all three,
    and deleting rows from ``chunks`` (by ``delete_document`` or by a cascading foreign key the
    app adds) removes the others. ``owner_id`` filtering is mandatory in the web layer; ``None``
    (search every owner) exists for admin tools and benchmarks. ``document_ids`` restricts the
    search to documents in scope; an empty list matches nothing.
    """

    dialect: str

    def __init__(self, db: DBExecutor, *, dimension: int = 384) -> None:
        self.db = db
        self.dimension = dimension

    @abc.abstractmethod
    async def add(self, chunks: Sequence[ChunkRecord], *, embedding_model: str) -> None:
        """Insert chunks with their vectors and keyword entries."""

    async def chunk_texts(self, document_id: str) -> list[tuple[str, str, str]]:
        """(chunk id, heading, text) of a document's chunks in order, for re-embedding."""
        result = await self.db.execute(
            text("SELECT id, heading, text FROM chunks WHERE document_id = :d ORDER BY ordinal"),
            {"d": document_id},
        )
        return [(row[0], row[1], row[2]) for row in result.all()]

    async def replace_embeddings(
        self,
        vectors: Sequence[tuple[str, Sequence[float] | NDArray[np.float32]]],
        *,
        embedding_model: str,
    ) -> None:
        """Swap the vectors of existing chunks (by id) for ones of another embedding model."""
        if vectors:
            await self._replace_checked(self._checked_pairs(vectors), embedding_model)

    @abc.abstractmethod
    async def _replace_checked(self, vectors: CheckedVectors, embedding_model: str) -> None:
        """``replace_embeddings`` once the vectors are checked (ids not found are skipped)."""

    async def delete_document(self, document_id: str) -> int:
        """Remove every chunk of a document from all tables; returns how many were removed.

        Only `chunks` is touched: vectors and keyword entries live in the same row
        (PostgreSQL) or are removed by a trigger (SQLite).
        """
        result = await self.db.execute(
            text("DELETE FROM chunks WHERE document_id = :d"), {"d": document_id}
        )
        return int(result.rowcount)

    async def delete_owner(self, owner_id: str) -> int:
        """Remove every chunk of an owner (account deletion); returns how many were removed."""
        result = await self.db.execute(
            text("DELETE FROM chunks WHERE owner_id = :o"), {"o": owner_id}
        )
        return int(result.rowcount)

    async def committed(self) -> None:  # noqa: B027 (a no-op unless overridden)
        """Finish what must wait until the caller's transaction has committed.

        Nothing for the database's own indexes; an index with vectors outside the database
        (Qdrant) deletes there the vectors of rows this transaction deleted.
        """

    @abc.abstractmethod
    async def keyword_search(
        self, query: str, owner_id: str | None, document_ids: Sequence[str] | None, k: int
    ) -> list[ScoredChunk]:
        """Best ``k`` chunks by keyword relevance (BM25 on SQLite, IDF-weighted ts_rank on PG)."""

    @abc.abstractmethod
    async def vector_search(
        self,
        embedding: Sequence[float] | NDArray[np.float32],
        owner_id: str | None,
        document_ids: Sequence[str] | None,
        k: int,
    ) -> list[ScoredChunk]:
        """Nearest ``k`` chunks by cosine similarity (score = 1 - cosine distance)."""

    @abc.abstractmethod
    async def count(self, *, owner_id: str | None = None, document_id: str | None = None) -> int:
        """Number of chunks, optionally of one owner and/or one document."""

    def _query_vector(
        self,
        embedding: Sequence[float] | NDArray[np.float32],
        document_ids: Sequence[str] | None,
        k: int,
    ) -> NDArray[np.float32] | None:
        """The checked query vector, or None when the search cannot match anything."""
        vector = self._checked(embedding)
        if k <= 0 or (document_ids is not None and not document_ids):
            return None
        if not np.any(vector) or not np.all(np.isfinite(vector)):
            # A zero (or NaN) query has no direction: every cosine distance would be NaN/NULL.
            return None
        return vector

    def _checked(self, embedding: Sequence[float] | NDArray[np.float32]) -> NDArray[np.float32]:
        """``embedding`` as a float32 vector of this index's dimension (else ValueError)."""
        vector = as_vector(embedding)
        self._check_dimension(vector)
        return vector

    def _checked_pairs(
        self, vectors: Sequence[tuple[str, Sequence[float] | NDArray[np.float32]]]
    ) -> CheckedVectors:
        """(chunk id, checked vector) pairs for ``replace_embeddings``."""
        return [(chunk_id, self._checked(v)) for chunk_id, v in vectors]

    def _check_dimension(self, vector: NDArray[np.float32]) -> None:
        if vector.shape != (self.dimension,):
            raise ValueError(f"embedding has shape {vector.shape}, index expects {self.dimension}")


def as_vector(embedding: Sequence[float] | NDArray[np.float32]) -> NDArray[np.float32]:
    """Embedding as a contiguous 1-d float32 array."""
    return np.ascontiguousarray(np.asarray(embedding, dtype=np.float32).reshape(-1))


def ddl_statements(dialect: str, dimension: int = 384) -> list[str]:
    """Idempotent CREATE statements of the chunk index for 'sqlite' or 'postgresql'."""
    if dialect == "sqlite":
        from botgpt.retrieval.sqlite_store import sqlite_ddl

        return sqlite_ddl(dimension)
    if dialect == "postgresql":
        from botgpt.retrieval.pg_store import postgres_ddl

        return postgres_ddl(dimension)
    raise ValueError(f"unsupported dialect {dialect!r}")


def chunk_index_for(db: Any, *, dimension: int = 384, **options: Any) -> ChunkIndex:
    """The index implementation matching the dialect of ``db`` (AsyncConnection/AsyncSession)."""
    dialect = _dialect_name(db)
    if dialect == "sqlite":
        from botgpt.retrieval.sqlite_store import SqliteChunkIndex

        return SqliteChunkIndex(db, dimension=dimension, **options)
    if dialect == "postgresql":
        from botgpt.retrieval.pg_store import PostgresChunkIndex

        return PostgresChunkIndex(db, dimension=dimension, **options)
    raise ValueError(f"unsupported dialect {dialect!r}")


def _dialect_name(db: Any) -> str:
    dialect = getattr(db, "dialect", None)  # AsyncConnection
    if dialect is None:
        dialect = db.get_bind().dialect  # AsyncSession
    return str(dialect.name)
