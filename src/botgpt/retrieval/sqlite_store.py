"""SQLite chunk index: rows in ``chunks``, vectors in sqlite-vec, keywords in FTS5.

Layout: ``chunks`` holds the rows (``id`` is the primary key the app uses) plus ``seq``, a
stable integer that is the rowid of the chunk in ``chunks_vec`` and ``chunks_fts``. ``seq`` is
explicit because an implicit rowid may change on VACUUM. Triggers on ``chunks`` delete the
matching vector and FTS rows, so deleting a chunk row by any path (a cascading foreign key
included) leaves nothing behind.

``chunks_vec`` (vec0) scans compact vectors and rescores exactly: its KNN column holds each
vector as a 5-level code per dimension in bits (Hamming distance; 240 bytes for 384
dimensions, see ``LEVELS``), or int8 for a dimension bits cannot take, and the float32 vector
sits beside it in an auxiliary column. A search takes ``candidates(k)`` rows by the compact
distance, then orders those by exact cosine on the float vectors. ``owner_id`` is the
partition key (a filtered KNN scans only that owner's vectors) and ``document_id`` a metadata
column, so both filters apply inside the scan and a search never comes back short when ``k``
chunks exist.

``chunks_fts`` (contentless FTS5, porter stemming; text is read back from ``chunks``) indexes
the owner as a token in its own column: a search filtered to one owner ANDs that token with
the query words, so FTS5 walks only that owner's postings instead of ranking every owner's
matches and dropping them after. A query's terms found in more than ``COMMON_TERM_SHARE`` of all
chunks are left out of the MATCH while rarer ones remain: BM25 gives them little weight, yet
each one's matches would all be ranked (a "1" or "show" matches a quarter of SciFact's chunks).
The query is tokenized by an FTS5 table of its own in the connection's temp schema, so the
terms looked up in ``chunks_fts``'s vocabulary are the stems FTS5 indexed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from botgpt.retrieval.keywords import fts5_match_expression, keyword_terms
from botgpt.retrieval.stores import (
    CheckedVectors,
    ChunkIndex,
    ChunkRecord,
    DBExecutor,
    ScoredChunk,
    encode_page_breaks,
    scored_row,
)

# vec0 refuses k above this in a KNN query.
_VEC_MAX_K = 4096
Quantizer = Literal["levels", "int8"]
# Chosen with bench/scale_retrieval.py --sweep (see README): the smallest candidate list that
# keeps recall@10 against exact float search at 0.98 or more.
DEFAULT_QUANTIZER: Quantizer = "levels"
DEFAULT_OVERSAMPLE = 6
# Thresholds of the "levels" code, in units of a unit vector's typical component (1/sqrt(d)):
# each dimension becomes 5 bits, set where the component exceeds the threshold (a thermometer
# code), so the Hamming distance of two codes is the L1 distance of their levels. The sign
# alone (1 bit) ranks MiniLM vectors too coarsely: recall@10 0.94 with 80 candidates.
LEVELS = (-1.2, -0.5, 0.0, 0.5, 1.2)
# Oversampling is tuned for the top 10; a longer list (hybrid search fetches 50 per side) gets
# at least the same candidates, so its first 10 are as good, plus 10 more than k. vec0 picks
# its k best by repeated selection (cost ~ k x rows scanned), so the candidate list is kept as
# short as recall allows rather than k * oversample.
_RESCORED_TOP = 10


def candidates(k: int, oversample: int) -> int:
    """How many rows the compact scan returns for a search of ``k``."""
    return min(max(k + _RESCORED_TOP, _RESCORED_TOP * oversample), _VEC_MAX_K)


def quantizer_for(dimension: int, quantizer: Quantizer = DEFAULT_QUANTIZER) -> Quantizer:
    """The quantizer a table of this dimension uses (bit vectors need a multiple of 8)."""
    return quantizer if dimension % 8 == 0 else "int8"


def vec_column(dimension: int, quantizer: Quantizer = DEFAULT_QUANTIZER) -> str:
    """The vec0 declaration of the compact KNN column."""
    if quantizer_for(dimension, quantizer) == "levels":
        return f"embedding BIT[{len(LEVELS) * int(dimension)}]"
    return f"embedding INT8[{int(dimension)}] distance_metric=cosine"


def vec_constructor(quantizer: Quantizer) -> str:
    """The sqlite-vec function that types a compact vector blob for this quantizer."""
    return "vec_bit" if quantizer == "levels" else "vec_int8"


def dimension_from_schema(schema: str) -> int | None:
    """The vector dimension of a ``chunks_vec`` CREATE statement (any layout so far)."""
    match = re.search(r"\b(FLOAT|INT8|BIT)\[(\d+)\]", schema, re.IGNORECASE)
    if match is None:
        return None
    size = int(match.group(2))
    return size // len(LEVELS) if match.group(1).upper() == "BIT" else size


def quantize(vectors: NDArray[np.float32], quantizer: Quantizer) -> NDArray[Any]:
    """Compact form of each row of ``vectors`` ("levels": thermometer bits, packed LSB first;
    int8: scaled so each vector's largest component is 127, which keeps its direction)."""
    if quantizer == "levels":
        norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
        scaled = vectors * (np.sqrt(vectors.shape[-1]) / np.where(norms > 0, norms, 1.0))
        bits = np.concatenate([scaled > t for t in LEVELS], axis=-1)
        return np.packbits(bits, axis=-1, bitorder="little")
    peak = np.max(np.abs(vectors), axis=-1, keepdims=True)
    scale = 127.0 / np.where(peak > 0, peak, 1.0)
    return np.rint(vectors * scale).astype(np.int8)


# Chosen with bench/scale_retrieval.py --store sqlite (README): at 100k chunks across owners,
# keyword p50 32 -> 18 ms (share 0.2: 22 ms, 0.1: 15 ms); SciFact test nDCG@10 hybrid 0.718 ->
# 0.719, BM25 0.688 -> 0.684 (0.2: 0.688, 0.1: 0.675).
COMMON_TERM_SHARE = 0.15
COMMON_TERM_ROWS = 2000
_FTS_TOKENIZER = "porter unicode61 remove_diacritics 2"
# Per connection (temp schema), made when the connection opens (botgpt.db) so that a search's
# rolled-back transaction cannot take them away: a one-row FTS5 table that tokenizes the query
# like chunks_fts, its per-token view, and chunks_fts's vocabulary (documents per term).
QUERY_TERMS_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_words USING fts5(w, "
    f"tokenize='{_FTS_TOKENIZER}')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_words_at "
    "USING fts5vocab(temp, query_words, 'instance')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunk_terms USING fts5vocab(main, chunks_fts, 'row')",
)


def owner_token(owner_id: str) -> str:
    """The FTS5 token of an owner: 65 characters, beyond what the porter stemmer alters."""
    return "o" + hashlib.sha256(owner_id.encode()).hexdigest()


def sqlite_ddl(dimension: int, quantizer: Quantizer = DEFAULT_QUANTIZER) -> list[str]:
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
            {vec_column(dimension, quantizer)},
            +vector BLOB
        )""",
        f"""CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
            heading, text, owner,
            content='', contentless_delete=1,
            tokenize='{_FTS_TOKENIZER}'
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
        quantizer: Quantizer = DEFAULT_QUANTIZER,
        oversample: int = DEFAULT_OVERSAMPLE,
        common_term_share: float = COMMON_TERM_SHARE,
        common_term_rows: int = COMMON_TERM_ROWS,
    ) -> None:
        super().__init__(db, dimension=dimension)
        # bm25() column weights: a match in a heading/title can count more than in the body.
        self.heading_weight = heading_weight
        self.text_weight = text_weight
        # Must match the table (sqlite_ddl's quantizer); the rescoring keeps results exact
        # among the candidates(k, oversample) nearest by compact distance.
        self.quantizer = quantizer_for(dimension, quantizer)
        self.oversample = max(1, oversample)
        self.common_term_share = common_term_share  # 1.0 or more keeps every term
        self.common_term_rows = common_term_rows

    def _vec_rows(
        self, rows: Sequence[tuple[int, str, str, NDArray[np.float32]]]
    ) -> list[dict[str, Any]]:
        """vec0 parameters of (seq, owner, document, vector) rows, quantised in one go."""
        if not rows:
            return []
        compact = quantize(np.stack([vector for *_, vector in rows]), self.quantizer)
        return [
            {
                "seq": seq,
                "owner_id": owner,
                "document_id": document,
                "compact": compact[i].tobytes(),
                "vector": vector.tobytes(),
            }
            for i, (seq, owner, document, vector) in enumerate(rows)
        ]

    def _vec_insert(self) -> str:
        constructor = vec_constructor(self.quantizer)
        return (
            "INSERT INTO chunks_vec (rowid, owner_id, document_id, embedding, vector) "
            f"VALUES (:seq, :owner_id, :document_id, {constructor}(:compact), :vector)"
        )

    async def add(self, chunks: Sequence[ChunkRecord], *, embedding_model: str) -> None:
        """Insert rows, then vectors and FTS entries under each row's new ``seq``."""
        if not chunks:
            return
        vectors = [self._checked(c.embedding) for c in chunks]
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
            text(self._vec_insert()),
            self._vec_rows(
                [
                    (seqs[c.id], c.owner_id, c.document_id, vector)
                    for c, vector in zip(chunks, vectors, strict=True)
                ]
            ),
        )
        await self.db.execute(
            text(
                "INSERT INTO chunks_fts (rowid, heading, text, owner) "
                "VALUES (:seq, :heading, :text, :owner)"
            ),
            [
                {
                    "seq": seqs[c.id],
                    "heading": c.heading,
                    "text": c.text,
                    "owner": owner_token(c.owner_id),
                }
                for c in chunks
            ],
        )

    async def _replace_checked(self, vectors: CheckedVectors, embedding_model: str) -> None:
        """Rewrite the vec0 rows of existing chunks and record the new model on them."""
        ids = json.dumps([chunk_id for chunk_id, _ in vectors])
        rows = await self.db.execute(
            text(
                "SELECT id, seq, owner_id, document_id FROM chunks "
                "WHERE id IN (SELECT value FROM json_each(:ids))"
            ),
            {"ids": ids},
        )
        meta = {row[0]: (row[1], row[2], row[3]) for row in rows.all()}
        present = [(chunk_id, vector) for chunk_id, vector in vectors if chunk_id in meta]
        if present:
            # vec0 rows are replaced whole (delete + insert keeps partition/metadata columns).
            await self.db.execute(
                text("DELETE FROM chunks_vec WHERE rowid = :seq"),
                [{"seq": meta[chunk_id][0]} for chunk_id, _ in present],
            )
            await self.db.execute(
                text(self._vec_insert()),
                self._vec_rows([(*meta[chunk_id], vector) for chunk_id, vector in present]),
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
        terms = await self._without_common(terms)
        match = "{heading text} : (" + fts5_match_expression(terms) + ")"
        if owner_id is not None:
            # Inside the MATCH, so FTS5 skips other owners' postings; the filter on c.owner_id
            # below stays as the authoritative check.
            match += f' AND owner : "{owner_token(owner_id)}"'
        params: dict[str, Any] = {
            "match": match,
            "k": k,
            "wh": self.heading_weight,
            "wt": self.text_weight,
        }
        scope = ""
        if document_ids is not None:
            # The unary + keeps SQLite from driving FTS5 by these rowids (one full MATCH per
            # rowid: seconds for a large scope); the set is built once and probed per match.
            scope = (
                " AND +chunks_fts.rowid IN (SELECT seq FROM chunks WHERE document_id IN "
                "(SELECT value FROM json_each(:document_ids)))"
            )
            params["document_ids"] = json.dumps(list(document_ids))
        owner = ""
        if owner_id is not None:
            owner = " WHERE c.owner_id = :owner_id"
            params["owner_id"] = owner_id
        # Ranked on the FTS table alone, then only the best k are joined to their rows (a join
        # first would read and sort every match's text). The owner column's weight is 0: its
        # token never adds to a chunk's score.
        sql = (
            "WITH ranked AS (SELECT chunks_fts.rowid AS seq, "
            "-bm25(chunks_fts, :wh, :wt, 0.0) AS score FROM chunks_fts "
            f"WHERE chunks_fts MATCH :match{scope} ORDER BY score DESC LIMIT :k) "
            f"SELECT {_COLUMNS}, ranked.score FROM ranked JOIN chunks c ON c.seq = ranked.seq"
            f"{owner} ORDER BY ranked.score DESC"
        )
        result = await self.db.execute(text(sql), params)
        return [scored_row(row, float(row[11])) for row in result.all()]

    async def _without_common(self, terms: list[str]) -> list[str]:
        """``terms`` less those in more than ``common_term_share`` of the chunks, unless that
        would leave none."""
        if len(terms) < 2 or self.common_term_share >= 1.0:
            return terms
        # One row, replaced in place: no DELETE round trip per search.
        store = text("INSERT OR REPLACE INTO temp.query_words (rowid, w) VALUES (1, :w)")
        try:
            await self.db.execute(store, {"w": " ".join(terms)})
        except OperationalError:  # a connection not opened by botgpt.db.sqlite_connect
            for statement in QUERY_TERMS_DDL:
                await self.db.execute(text(statement))
            await self.db.execute(store, {"w": " ".join(terms)})
        # Each term is one token (keyword_terms splits like unicode61): offset i is terms[i].
        result = await self.db.execute(
            text(
                "SELECT q.offset, COALESCE(v.doc, 0), (SELECT MAX(seq) FROM chunks) "
                "FROM temp.query_words_at q LEFT JOIN temp.chunk_terms v ON v.term = q.term"
            )
        )
        rows = result.all()
        if not rows:
            return terms
        # MAX(seq) counts deleted chunks too: a share can only be underestimated. Below
        # common_term_rows matches, ranking them all costs about a millisecond: kept.
        limit = max(self.common_term_share * int(rows[0][2] or 0), self.common_term_rows)
        frequency = {int(offset): int(documents) for offset, documents, _ in rows}
        kept = [i for i in range(len(terms)) if frequency.get(i, 0) <= limit]
        if not any(frequency.get(i, 0) for i in kept):  # nothing left that matches anything
            return terms
        return [terms[i] for i in kept]

    async def vector_search(
        self,
        embedding: Sequence[float] | NDArray[np.float32],
        owner_id: str | None,
        document_ids: Sequence[str] | None,
        k: int,
    ) -> list[ScoredChunk]:
        """KNN on the compact vectors (filtered inside the scan), rescored by exact cosine."""
        vector = self._query_vector(embedding, document_ids, k)
        if vector is None:
            return []
        k = min(k, _VEC_MAX_K)
        params: dict[str, Any] = {
            "q": vector.tobytes(),
            "qc": quantize(vector, self.quantizer).tobytes(),
            "kc": candidates(k, self.oversample),
            "k": k,
        }
        where = _filters("v", owner_id, document_ids, params)
        constructor = vec_constructor(self.quantizer)
        sql = (
            "WITH coarse AS (SELECT v.rowid AS seq, v.vector FROM chunks_vec v "
            f"WHERE v.embedding MATCH {constructor}(:qc) AND k = :kc{where}), "
            "best AS (SELECT seq, vec_distance_cosine(vector, :q) AS distance FROM coarse "
            "ORDER BY distance LIMIT :k) "
            f"SELECT {_COLUMNS}, 1.0 - best.distance AS score "
            "FROM best JOIN chunks c ON c.seq = best.seq ORDER BY best.distance"
        )
        result = await self.db.execute(text(sql), params)
        return [scored_row(row, float(row[11])) for row in result.all()]

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
