"""PostgreSQL chunk index: one ``chunks`` table with a pgvector column and a tsvector column.

Vectors: an HNSW index over half-precision copies (``CAST(embedding AS halfvec(n))``, half the
index of ``vector``); its candidates are re-ranked by the full-precision distance kept in the
table. A search over at most 20,000 rows (one owner, a document scope, a small table) is
answered exactly from those rows (btree on owner / document, then distances), which is both
faster than walking the graph and exact; larger sets use pgvector 0.8's iterative index
scan, and a scan that stops short (``hnsw.max_scan_tuples``) falls back to the exact scan:
``k`` rows come back whenever ``k`` rows match.

Keywords: a generated ``tsvector`` (heading weighted 'A', body 'B') with a GIN index, queried
with an OR of the query's content words. Plain ``ts_rank`` has no notion of term rarity, so
the default ranking sums, per query term, BM25's IDF times the term's length-normalised
``ts_rank`` ("idf_ts_rank"): on SciFact train it scored nDCG@10 0.696 against 0.610 for
``ts_rank`` and 0.44 for ``ts_rank_cd`` (bench/scifact.py --tune), close to FTS5's real BM25
(0.706). Document frequencies come from a trigger-maintained table and only candidates are
ranked (see ``pg_keyword``), which keeps the cost flat from 10k to 1M chunks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import text

from botgpt.retrieval.keywords import keyword_terms, tsquery_expression
from botgpt.retrieval.pg_keyword import (
    MAX_CANDIDATES,
    RANK_BUDGET,
    SCAN_FILTERED_ROWS,
    SHARE_CAP,
    TERMS_TABLE,
    plan_terms,
    ranked_candidates_sql,
    term_stats_ddl,
    term_stats_sql,
)
from botgpt.retrieval.stores import (
    CheckedVectors,
    ChunkIndex,
    ChunkRecord,
    DBExecutor,
    ScoredChunk,
    encode_page_breaks,
    scored_row,
)


def postgres_ddl(dimension: int) -> list[str]:
    """CREATE statements for PostgreSQL with pgvector (idempotent)."""
    dim = int(dimension)
    return [
        "CREATE EXTENSION IF NOT EXISTS vector",
        f"""CREATE TABLE IF NOT EXISTS chunks (
            id VARCHAR(36) NOT NULL PRIMARY KEY,
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
            embedding_model TEXT NOT NULL,
            embedding vector({dim}) NOT NULL,
            tsv tsvector GENERATED ALWAYS AS (
                setweight(to_tsvector('english', heading), 'A')
                || setweight(to_tsvector('english', text), 'B')
            ) STORED
        )""",
        # pgvector's default storage moves a vector out of line (TOAST) as soon as a row
        # passes 2 kB, i.e. always next to a chunk's text: an exact scan of an owner's rows
        # would then look up every vector in the TOAST table. Kept in the row instead (the
        # text and tsvector go out of line); idempotent.
        KEEP_VECTORS_INLINE,
        "CREATE INDEX IF NOT EXISTS ix_chunks_document_id ON chunks (document_id, ordinal)",
        "CREATE INDEX IF NOT EXISTS ix_chunks_owner_id ON chunks (owner_id)",
        hnsw_index_ddl(dim),
        "CREATE INDEX IF NOT EXISTS ix_chunks_tsv ON chunks USING gin (tsv)",
        *term_stats_ddl(),
    ]


def hnsw_index_ddl(dimension: int, *, m: int = 0, ef_construction: int = 0) -> str:
    """The HNSW index over half-precision copies of the vectors (half the size, same recall
    once the candidates are re-ranked by the full-precision distance)."""
    m = m or HNSW_M
    ef_construction = ef_construction or HNSW_EF_CONSTRUCTION
    return (
        f"CREATE INDEX IF NOT EXISTS {HNSW_INDEX} ON chunks USING hnsw "
        f"((CAST(embedding AS halfvec({int(dimension)}))) halfvec_cosine_ops) "
        f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)})"
    )


_COLUMNS = (
    "id, document_id, owner_id, ordinal, text, heading, page, char_start, char_end, page_end, "
    "page_breaks"
)
RANK_FUNCTIONS = ("ts_rank", "ts_rank_cd", "idf_ts_rank")
HNSW_INDEX = "ix_chunks_embedding_hnsw_half"
KEEP_VECTORS_INLINE = "ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE MAIN"
# HNSW graph and search settings (bench/scale_retrieval.py --store postgres at 1M chunks):
# against m 16 / ef_construction 64, the denser graph raised recall@10 across owners from 0.51
# to 0.76 at ef_search 200 (0.83 at 400), and of a 2% owner's filtered scan from 0.78 to 0.94,
# for 17% more index (1.3 GB at 1M), 364 s to build at 1M on 2 cores, ~2 ms more per insert.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 128
EF_SEARCH = 400
RESCORE_CANDIDATES = 40  # HNSW candidates (half precision) re-ranked by the exact distance
MAX_SCAN_TUPLES = 20000  # pgvector's default; a filtered scan that ends short goes exact
EXACT_SCAN_ROWS = 20000  # searches over at most this many rows skip the HNSW index
LONG_DOCUMENT_LIST = 64  # longer document scopes are applied to the owner's results


# The planner settings _approximate changes, back to their values before any SET.
_PLANNER_DEFAULTS = (
    "SELECT set_config(name, reset_val, true) FROM pg_settings WHERE name IN ('enable_sort', 'jit')"
)


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{column.strip()}" for column in _COLUMNS.split(","))


def vector_literal(vector: NDArray[np.float32]) -> str:
    """pgvector's text input format ('[x,y,...]'); asyncpg has no codec for the type."""
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


class PostgresChunkIndex(ChunkIndex):
    """``ChunkIndex`` on PostgreSQL with pgvector (HNSW) and a tsvector GIN index."""

    dialect = "postgresql"

    def __init__(
        self,
        db: DBExecutor,
        *,
        dimension: int = 384,
        rank_function: str = "idf_ts_rank",
        rank_normalization: int = 1,
        rank_weights: tuple[float, float, float, float] = (0.1, 0.2, 1.0, 1.0),
        ef_search: int = EF_SEARCH,
        rescore_candidates: int = RESCORE_CANDIDATES,
        iterative_scan: str = "relaxed_order",
        max_scan_tuples: int = MAX_SCAN_TUPLES,
        exact_scan_rows: int = EXACT_SCAN_ROWS,
        rank_budget: int = RANK_BUDGET,
    ) -> None:
        super().__init__(db, dimension=dimension)
        if rank_function not in RANK_FUNCTIONS:
            raise ValueError(f"rank_function must be one of {RANK_FUNCTIONS}")
        self.rank_function = rank_function
        # ts_rank normalisation bit mask (1 = divide by 1 + log(length)): long chunks would
        # otherwise win just by containing more words.
        self.rank_normalization = int(rank_normalization)
        # Weights of labels {D, C, B, A}: headings are 'A', body 'B'; equal weights measured
        # best on SciFact train (a title counts as much as the abstract's words).
        self.rank_weights = "{" + ",".join(str(float(w)) for w in rank_weights) + "}"
        self.ef_search = ef_search
        self.rescore_candidates = rescore_candidates
        if iterative_scan not in ("relaxed_order", "strict_order"):
            raise ValueError("iterative_scan must be relaxed_order or strict_order")
        self.iterative_scan = iterative_scan
        self.max_scan_tuples = max_scan_tuples
        self.exact_scan_rows = exact_scan_rows
        self.rank_budget = rank_budget

    async def add(self, chunks: Sequence[ChunkRecord], *, embedding_model: str) -> None:
        """Insert rows with their vectors; the tsvector column is generated by PostgreSQL."""
        if not chunks:
            return
        rows = []
        for c in chunks:
            vector = self._checked(c.embedding)
            rows.append(
                {
                    "id": c.id,
                    "document_id": c.document_id,
                    "owner_id": c.owner_id,
                    "ordinal": c.ordinal,
                    "heading": c.heading,
                    "text": c.text.replace("\x00", ""),  # PostgreSQL text cannot hold NUL
                    "page": c.page,
                    "page_end": c.page_end,
                    "page_breaks": encode_page_breaks(c.page_breaks),
                    "char_start": c.char_start,
                    "char_end": c.char_end,
                    "token_count": c.token_count,
                    "embedding_model": embedding_model,
                    "embedding": vector_literal(vector),
                }
            )
        await self.db.execute(
            text(
                "INSERT INTO chunks (id, document_id, owner_id, ordinal, heading, text, page, "
                "page_end, page_breaks, char_start, char_end, token_count, embedding_model, "
                "embedding) VALUES (:id, :document_id, :owner_id, :ordinal, :heading, :text, "
                ":page, :page_end, :page_breaks, :char_start, :char_end, :token_count, "
                ":embedding_model, CAST(:embedding AS vector))"
            ),
            rows,
        )

    async def _replace_checked(self, vectors: CheckedVectors, embedding_model: str) -> None:
        """Update the vector column of existing chunks and record the new model on them."""
        params = [
            {"id": chunk_id, "m": embedding_model, "e": vector_literal(vector)}
            for chunk_id, vector in vectors
        ]
        await self.db.execute(
            text(
                "UPDATE chunks SET embedding = CAST(:e AS vector), embedding_model = :m "
                "WHERE id = :id"
            ),
            params,
        )

    async def keyword_search(
        self, query: str, owner_id: str | None, document_ids: Sequence[str] | None, k: int
    ) -> list[ScoredChunk]:
        """ts_rank over an OR query of the content words (stemmed by the 'english' config)."""
        terms = keyword_terms(query)
        if not terms or k <= 0 or (document_ids is not None and not document_ids):
            return []
        params: dict[str, Any] = {"k": k}
        if self.rank_function == "idf_ts_rank":
            return await self._within_documents(
                lambda docs, n: self._idf_ranked(terms, owner_id, docs, n),
                owner_id,
                document_ids,
                k,
            )
        params["tsq"] = tsquery_expression(terms)
        where = _filters(owner_id, document_ids, params)
        rank = (
            f"{self.rank_function}('{self.rank_weights}'::float4[], tsv, q, "
            f"{self.rank_normalization})"
        )
        sql = (
            f"SELECT {_COLUMNS}, {rank} AS score "
            "FROM chunks, to_tsquery('english', :tsq) AS q "
            f"WHERE tsv @@ q{where} ORDER BY score DESC, id LIMIT :k"
        )
        result = await self.db.execute(text(sql), params)
        return [scored_row(row, float(row[11])) for row in result.all()]

    async def _idf_ranked(
        self, terms: list[str], owner_id: str | None, document_ids: Sequence[str] | None, k: int
    ) -> list[ScoredChunk]:
        """IDF-weighted ts_rank of the candidates (two round trips: term statistics, ranking)."""
        params: dict[str, Any] = {"terms": terms, "share_cap": SHARE_CAP}
        where = _filters(owner_id, document_ids, params, "c")
        stats = await self.db.execute(text(term_stats_sql(where)), params)
        plan = plan_terms(stats.all(), self.rank_budget)
        if plan is None:
            return []
        params.update(
            lexemes=plan.lexemes,
            idfs=plan.idfs,
            candidates=plan.candidate_query,
            max_candidates=MAX_CANDIDATES,
            k=k,
        )
        small = plan.filtered_rows is not None and plan.filtered_rows <= SCAN_FILTERED_ROWS
        sql = ranked_candidates_sql(
            _COLUMNS, where, self.rank_weights, self.rank_normalization, scan_filtered=small
        )
        result = await self.db.execute(text(sql), params)
        return [scored_row(row, float(row[11])) for row in result.all()]

    async def vector_search(
        self,
        embedding: Sequence[float] | NDArray[np.float32],
        owner_id: str | None,
        document_ids: Sequence[str] | None,
        k: int,
    ) -> list[ScoredChunk]:
        """Nearest ``k`` chunks: exact over a small filtered set, else HNSW plus exact rescoring.

        Never short: a filtered HNSW scan that gives up (``hnsw.max_scan_tuples``) before
        finding ``k`` rows is followed by the exact scan, so ``k`` rows come back when ``k``
        rows match the filters.
        """
        vector = self._query_vector(embedding, document_ids, k)
        if vector is None:
            return []
        literal = vector_literal(vector)
        return await self._within_documents(
            lambda docs, n: self._nearest(literal, owner_id, docs, n), owner_id, document_ids, k
        )

    async def _within_documents(
        self,
        search: Callable[[Sequence[str] | None, int], Awaitable[list[ScoredChunk]]],
        owner_id: str | None,
        document_ids: Sequence[str] | None,
        k: int,
    ) -> list[ScoredChunk]:
        """Run ``search`` (documents, k) with a long document list applied here, not in SQL.

        The chat scope passes every ready document of the owner: thousands of ids, whose
        ``= ANY(...)`` costs PostgreSQL tens of milliseconds to plan (a selectivity estimate
        per element) and slows the HNSW scan's filter. The owner's own search, kept to the
        listed documents, gives the same rows; it is fetched deeper until ``k`` survive or
        the owner's rows run out, and only then does the SQL filter serve (rare: a long list
        that is a small part of the owner's documents).
        """
        wanted = set(document_ids or ())
        if owner_id is None or len(wanted) <= LONG_DOCUMENT_LIST:
            return await search(document_ids, k)
        fetch = 2 * k
        for _ in range(3):
            found = await search(None, fetch)
            kept = [hit for hit in found if hit.document_id in wanted]
            if len(kept) >= k or len(found) < fetch:
                return kept[:k]
            fetch *= 4
        return await search(document_ids, k)

    async def _nearest(
        self, literal: str, owner_id: str | None, document_ids: Sequence[str] | None, k: int
    ) -> list[ScoredChunk]:
        params: dict[str, Any] = {"q": literal, "k": k}
        where = _filters(owner_id, document_ids, params)
        if await self._exact_is_cheaper(where, params):
            return await self._exact(where, params)
        found = await self._approximate(where, params, k)
        if len(found) < k:
            found = await self._exact(where, params)
        return found

    async def _exact_is_cheaper(self, where: str, params: dict[str, Any]) -> bool:
        """Whether to scan the rows the filters match (or the whole table) exactly instead of
        walking the graph: when they are at most ``exact_scan_rows``.

        Scanning costs about 0.7 us per row; the graph (m 32, ef_search 400) about 10 ms
        whatever the table, more when a filter rejects most of what it visits. Measured
        (bench/scale_retrieval.py --paths): a 19,680-chunk owner at 2% of 1M chunks, exact
        17 ms recall 1.0 against HNSW 21 ms recall 0.94; a 9,840-chunk owner at 10% of 100k,
        exact 6 ms against HNSW 10 ms recall 0.995. The planner, left to itself, sorted small
        tables by casting every vector to halfvec (66 ms at 10k chunks).
        """
        if self.exact_scan_rows <= 0:
            return False
        if where:
            sql = (
                "SELECT count(*) FROM (SELECT 1 FROM chunks WHERE TRUE"
                f"{where} LIMIT {int(self.exact_scan_rows) + 1}) AS capped"
            )
        else:  # the whole table: its row count is kept by the term statistics' triggers
            sql = f"SELECT df FROM {TERMS_TABLE} WHERE lexeme = ''"
        result = await self.db.execute(text(sql), params)
        rows = result.scalar_one_or_none()
        return rows is not None and int(rows) <= self.exact_scan_rows

    async def _exact(self, where: str, params: dict[str, Any]) -> list[ScoredChunk]:
        """Exact cosine distances over the filtered rows (full-precision vectors)."""
        result = await self.db.execute(
            # The k nearest ids first: the sort then carries no text, which is read for k rows.
            text(
                "WITH best AS (SELECT id, embedding <=> CAST(:q AS vector) AS distance "
                f"FROM chunks WHERE TRUE{where} ORDER BY distance, id LIMIT :k) "
                f"SELECT {_prefixed('c')}, best.distance FROM best JOIN chunks c ON c.id = best.id "
                "ORDER BY best.distance, best.id"
            ),
            params,
        )
        return [scored_row(row, 1.0 - float(row[11])) for row in result.all()]

    async def _approximate(self, where: str, params: dict[str, Any], k: int) -> list[ScoredChunk]:
        """HNSW over half-precision vectors, the candidates re-ranked by the exact distance."""
        candidates = max(k, self.rescore_candidates)
        ef_search = min(max(self.ef_search, candidates), 1000)
        # set_config(..., true) lasts until the end of the caller's transaction; one round trip.
        # enable_sort off: the planner costs casting every row to halfvec as nearly free, so
        # at ef_search 400 it preferred "cast and sort all rows" for tables up to ~100k rows
        # (66 ms at 10k chunks); this path is the index's. jit off: the penalty enable_sort
        # adds to the plan's cost would otherwise buy a JIT compilation (70 ms).
        await self.db.execute(
            text(
                "SELECT set_config('hnsw.ef_search', :ef, true), "
                "set_config('hnsw.iterative_scan', :mode, true), "
                "set_config('hnsw.max_scan_tuples', :max_tuples, true), "
                "set_config('enable_sort', 'off', true), set_config('jit', 'off', true)"
            ),
            {
                "ef": str(ef_search),
                "mode": self.iterative_scan,
                "max_tuples": str(self.max_scan_tuples),
            },
        )
        half = f"halfvec({int(self.dimension)})"
        sql = (
            f"SELECT {_COLUMNS}, embedding <=> CAST(:q AS vector) AS distance FROM "
            f"(SELECT {_COLUMNS}, embedding FROM chunks WHERE TRUE{where} "
            f"ORDER BY CAST(embedding AS {half}) <=> CAST(:q AS {half}) LIMIT :n) AS near "
            "ORDER BY distance, id LIMIT :k"
        )
        result = await self.db.execute(text(sql), {**params, "n": candidates})
        found = [scored_row(row, 1.0 - float(row[11])) for row in result.all()]
        await self.db.execute(text(_PLANNER_DEFAULTS))
        return found

    async def count(self, *, owner_id: str | None = None, document_id: str | None = None) -> int:
        """Number of chunk rows matching the filters."""
        params: dict[str, Any] = {}
        where = _filters(owner_id, [document_id] if document_id else None, params)
        result = await self.db.execute(
            text(f"SELECT COUNT(*) FROM chunks WHERE TRUE{where}"), params
        )
        return int(result.scalar_one())


def _filters(
    owner_id: str | None,
    document_ids: Sequence[str] | None,
    params: dict[str, Any],
    alias: str = "",
) -> str:
    prefix = f"{alias}." if alias else ""
    clauses = ""
    if owner_id is not None:
        clauses += f" AND {prefix}owner_id = :owner_id"
        params["owner_id"] = owner_id
    if document_ids is not None:
        clauses += f" AND {prefix}document_id = ANY(:document_ids)"
        params["document_ids"] = list(document_ids)
    return clauses
