"""SQLite chunk index: rows in ``chunks``, vectors in sqlite-vec, keywords in FTS5.

Layout: ``chunks`` holds the rows (``id`` is the primary key the app uses) plus ``seq``, a
stable integer that is the rowid of the chunk in ``chunks_vec`` (vec0, cosine distance,
``owner_id`` as partition key so a filtered KNN only scans that owner's vectors, and
``document_id`` as a metadata column so document scoping happens inside the KNN, not after
it) and in ``chunks_fts`` (contentless FTS5 with porter stemming; text is read back from
``chunks``). ``seq`` is explicit because an implicit rowid may change on VACUUM. Triggers on
``chunks`` delete the matching vector and FTS rows, so deleting a chunk row by any path (a
cascading foreign key included) leaves nothing behind.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import text

from botgpt.retrieval.keywords import fts5_match_expression, keyword_terms
from botgpt.retrieval.stores import (
    ChunkIndex,
    ChunkRecord,
    DBExecutor,
    ScoredChunk,
    as_vector,
    decode_page_breaks,
    encode_page_breaks,
)

# vec0 refuses k above this in a KNN query.
_VEC_MAX_K = 4096


def sqlite_ddl(dimension: int) -> list[str]:
    """CREATE statements for SQLite (idempotent)."""
    return [
        """CREATE TABLE IF NOT EXISTS chunks (
            id VARCHAR(36) NOT NULL PRIMARY KEY,
            seq INTEGER NOT NULL UNIQUE,
            document_id VARCHAR(36) NOT NULL,
            owner_id VARCHAR(36) NOT NULL,
            ordinal INTEGER NOT NULL,
            heading TEXT NOT NULL DEFAULT '',
            text TEXT NOT NULL,
            page INTEGER,
            page_end INTEGER,
            page_breaks TEXT NOT NULL DEFAULT '',
            char_start INTEGER NOT NULL,
            char_end INTEGER NOT NULL,
            token_count INTEGER NOT NULL DEFAULT 0,
            embedding_model TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS ix_chunks_document_id ON chunks (document_id, ordinal)",
        "CREATE INDEX IF NOT EXISTS ix_chunks_owner_id ON chunks (owner_id)",
        f"""CREATE VIRTUAL TABLE IF NOT EXISTS chunks_vec USING vec0(
            owner_id TEXT PARTITION KEY,
            document_id TEXT,
            embedding FLOAT[{int(dimension)}] distance_metric=cosine
        )""",
        """CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
            heading, text,
            content='', contentless_delete=1,
            tokenize='porter unicode61 remove_diacritics 2'
        )""",
        """CREATE TRIGGER IF NOT EXISTS chunks_after_delete AFTER DELETE ON chunks BEGIN
            DELETE FROM chunks_vec WHERE rowid = old.seq;
            DELETE FROM chunks_fts WHERE rowid = old.seq;
        END""",
    ]


_COLUMNS = (
    "c.id, c.document_id, c.owner_id, c.ordinal, c.text, c.heading, c.page, c.char_start, "
    "c.char_end, c.page_end, c.page_breaks"
)


class SqliteChunkIndex(ChunkIndex):
    """``ChunkIndex`` on SQLite with sqlite-vec (vec0) and FTS5 (BM25)."""

    dialect = "sqlite"

    def __init__(
        self,
        db: DBExecutor,
        *,
        dimension: int = 384,
        heading_weight: float = 1.0,
        text_weight: float = 1.0,
    ) -> None:
        super().__init__(db, dimension=dimension)
        # bm25() column weights: a match in a heading/title can count more than in the body.
        self.heading_weight = heading_weight
        self.text_weight = text_weight

    async def add(self, chunks: Sequence[ChunkRecord], *, embedding_model: str) -> None:
        """Insert rows, then vectors and FTS entries under each row's new ``seq``."""
        if not chunks:
            return
        vectors = [as_vector(c.embedding) for c in chunks]
        for vector in vectors:
            self._check_dimension(vector)
        # seq = MAX(seq)+1 evaluated per row inside the INSERT, i.e. under SQLite's write lock,
        # so concurrent writers cannot pick the same value.
        await self.db.execute(
            text(
                "INSERT INTO chunks (id, seq, document_id, owner_id, ordinal, heading, text, "
                "page, page_end, page_breaks, char_start, char_end, token_count, "
                "embedding_model) VALUES (:id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM chunks), "
                ":document_id, :owner_id, :ordinal, :heading, :text, :page, :page_end, "
                ":page_breaks, :char_start, :char_end, :token_count, :embedding_model)"
            ),
            [
                {
                    "id": c.id,
                    "document_id": c.document_id,
                    "owner_id": c.owner_id,
                    "ordinal": c.ordinal,
                    "heading": c.heading,
                    "text": c.text,
                    "page": c.page,
                    "page_end": c.page_end,
                    "page_breaks": encode_page_breaks(c.page_breaks),
                    "char_start": c.char_start,
                    "char_end": c.char_end,
                    "token_count": c.token_count,
                    "embedding_model": embedding_model,
                }
                for c in chunks
            ],
        )
        result = await self.db.execute(
            text("SELECT id, seq FROM chunks WHERE id IN (SELECT value FROM json_each(:ids))"),
            {"ids": json.dumps([c.id for c in chunks])},
        )
        seqs: dict[str, int] = {row[0]: row[1] for row in result.all()}
        await self.db.execute(
            text(
                "INSERT INTO chunks_vec (rowid, owner_id, document_id, embedding) "
                "VALUES (:seq, :owner_id, :document_id, :embedding)"
            ),
            [
                {
                    "seq": seqs[c.id],
                    "owner_id": c.owner_id,
                    "document_id": c.document_id,
                    "embedding": vector.tobytes(),
                }
                for c, vector in zip(chunks, vectors, strict=True)
            ],
        )
        await self.db.execute(
            text("INSERT INTO chunks_fts (rowid, heading, text) VALUES (:seq, :heading, :text)"),
            [{"seq": seqs[c.id], "heading": c.heading, "text": c.text} for c in chunks],
        )

    async def replace_embeddings(
        self,
        vectors: Sequence[tuple[str, Sequence[float] | NDArray[np.float32]]],
        *,
        embedding_model: str,
    ) -> None:
        """Rewrite the vec0 rows of existing chunks and record the new model on them."""
        if not vectors:
            return
        arrays = [(chunk_id, as_vector(v)) for chunk_id, v in vectors]
        for _, vector in arrays:
            self._check_dimension(vector)
        ids = json.dumps([chunk_id for chunk_id, _ in arrays])
        rows = await self.db.execute(
            text(
                "SELECT id, seq, owner_id, document_id FROM chunks "
                "WHERE id IN (SELECT value FROM json_each(:ids))"
            ),
            {"ids": ids},
        )
        meta = {row[0]: (row[1], row[2], row[3]) for row in rows.all()}
        present = [(chunk_id, vector) for chunk_id, vector in arrays if chunk_id in meta]
        # vec0 rows are replaced whole (delete + insert keeps partition/metadata columns right).
        await self.db.execute(
            text("DELETE FROM chunks_vec WHERE rowid = :seq"),
            [{"seq": meta[chunk_id][0]} for chunk_id, _ in present],
        )
        await self.db.execute(
            text(
                "INSERT INTO chunks_vec (rowid, owner_id, document_id, embedding) "
                "VALUES (:seq, :owner_id, :document_id, :embedding)"
            ),
            [
                {
                    "seq": meta[chunk_id][0],
                    "owner_id": meta[chunk_id][1],
                    "document_id": meta[chunk_id][2],
                    "embedding": vector.tobytes(),
                }
                for chunk_id, vector in present
            ],
        )
        await self.db.execute(
            text(
                "UPDATE chunks SET embedding_model = :m "
                "WHERE id IN (SELECT value FROM json_each(:ids))"
            ),
            {"m": embedding_model, "ids": ids},
        )

    async def keyword_search(
        self, query: str, owner_id: str | None, document_ids: Sequence[str] | None, k: int
    ) -> list[ScoredChunk]:
        """BM25 over an OR of the query's content words (score = -bm25, higher is better)."""
        terms = keyword_terms(query)
        if not terms or k <= 0 or (document_ids is not None and not document_ids):
            return []
        params: dict[str, Any] = {
            "match": fts5_match_expression(terms),
            "k": k,
            "wh": self.heading_weight,
            "wt": self.text_weight,
        }
        where = _filters("c", owner_id, document_ids, params)
        sql = (
            f"SELECT {_COLUMNS}, -bm25(chunks_fts, :wh, :wt) AS score "
            "FROM chunks_fts JOIN chunks c ON c.seq = chunks_fts.rowid "
            f"WHERE chunks_fts MATCH :match{where} ORDER BY score DESC LIMIT :k"
        )
        result = await self.db.execute(text(sql), params)
        return [_scored(row) for row in result.all()]

    async def vector_search(
        self,
        embedding: Sequence[float] | NDArray[np.float32],
        owner_id: str | None,
        document_ids: Sequence[str] | None,
        k: int,
    ) -> list[ScoredChunk]:
        """Exact KNN in vec0, filtered inside the scan by owner partition and document ids."""
        vector = self._query_vector(embedding, document_ids, k)
        if vector is None:
            return []
        params: dict[str, Any] = {"q": vector.tobytes(), "k": min(k, _VEC_MAX_K)}
        where = _filters("v", owner_id, document_ids, params)
        sql = (
            "WITH knn AS (SELECT v.rowid AS seq, v.distance FROM chunks_vec v "
            f"WHERE v.embedding MATCH :q AND k = :k{where}) "
            f"SELECT {_COLUMNS}, 1.0 - knn.distance AS score "
            "FROM knn JOIN chunks c ON c.seq = knn.seq ORDER BY knn.distance"
        )
        result = await self.db.execute(text(sql), params)
        return [_scored(row) for row in result.all()]

    async def count(self, *, owner_id: str | None = None, document_id: str | None = None) -> int:
        """Number of chunk rows matching the filters."""
        params: dict[str, Any] = {}
        where = _filters("c", owner_id, [document_id] if document_id else None, params)
        result = await self.db.execute(
            text(f"SELECT COUNT(*) FROM chunks c WHERE 1 = 1{where}"), params
        )
        return int(result.scalar_one())

    async def table_counts(self) -> dict[str, int]:
        """Row counts of chunks, chunks_vec and chunks_fts (for consistency checks)."""
        counts = {}
        for table in ("chunks", "chunks_vec", "chunks_fts"):
            result = await self.db.execute(text(f"SELECT COUNT(*) FROM {table}"))
            counts[table] = int(result.scalar_one())
        return counts


def _filters(
    alias: str, owner_id: str | None, document_ids: Sequence[str] | None, params: dict[str, Any]
) -> str:
    clauses = ""
    if owner_id is not None:
        clauses += f" AND {alias}.owner_id = :owner_id"
        params["owner_id"] = owner_id
    if document_ids is not None:
        # One JSON parameter instead of an IN list keeps the statement cacheable for any size.
        clauses += f" AND {alias}.document_id IN (SELECT value FROM json_each(:document_ids))"
        params["document_ids"] = json.dumps(list(document_ids))
    return clauses


def _scored(row: Any) -> ScoredChunk:
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
        score=float(row[11]),
    )
