"""Retrieval at scale: keyword, vector and hybrid search over 10k to 1M chunks, per store.

The corpus is bench/scale_corpus.py's (SciFact chunks repeated with perturbed vectors across
100 owners); queries are SciFact's test claims with their precomputed vectors (the query
embedding is not part of the timings). Prints one JSON object: build and index times, p50/p95
of keyword, vector and hybrid search filtered to one owner and across all, recall@10 of the
vector search against exact search, table and index sizes.

    .venv/bin/python bench/scale_retrieval.py --store postgres --chunks 1000000

PostgreSQL: the corpus is loaded once into ``botgpt_scale_<chunks>`` (COPY, then the indexes)
and kept for re-runs (``--rebuild`` to start again); the build figures are stored with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import numpy as np
from numpy.typing import NDArray
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

sys.path.insert(0, str(Path(__file__).parent))

import scale_corpus as corpus

from botgpt.retrieval.pg_keyword import RANK_BUDGET, rebuild_term_stats_sql, term_stats_ddl
from botgpt.retrieval.pg_store import (
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    PostgresChunkIndex,
    hnsw_index_ddl,
    postgres_ddl,
)
from botgpt.retrieval.search import HybridSearcher

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:55432/botgpt_test"
K = 10  # recall@10 and the vector/keyword latencies; hybrid asks for 8 like the chat turn
HYBRID_K = 8
PG_COPY_COLUMNS = [
    "id",
    "document_id",
    "owner_id",
    "ordinal",
    "heading",
    "text",
    "page",
    "page_end",
    "page_breaks",
    "char_start",
    "char_end",
    "token_count",
    "embedding_model",
    "embedding",
]


# --------------------------------------------------------------------------- PostgreSQL build


def pg_raw_url(url: str) -> str:
    """asyncpg's form of an SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://")


def pg_encode_vector(vector: NDArray[np.float32]) -> bytes:
    """pgvector's binary format: dimension, unused, big-endian float32 values."""
    return struct.pack(">HH", len(vector), 0) + vector.astype(">f4").tobytes()


async def pg_connect(url: str) -> Any:
    """An asyncpg connection that can COPY vectors in binary."""
    conn = await asyncpg.connect(pg_raw_url(url))
    await conn.set_type_codec(
        "vector",
        schema="public",
        encoder=pg_encode_vector,
        decoder=lambda data: data,
        format="binary",
    )
    return conn


async def pg_database(url: str, name: str, rebuild: bool) -> tuple[str, bool]:
    """URL of the benchmark database and whether it already holds a finished build."""
    admin = await asyncpg.connect(pg_raw_url(url))
    try:
        if rebuild:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    bench_url = url.rpartition("/")[0] + "/" + name
    conn = await asyncpg.connect(pg_raw_url(bench_url))
    try:
        built = await conn.fetchval("SELECT to_regclass('bench_build') IS NOT NULL")
    finally:
        await conn.close()
    return bench_url, bool(built)


def pg_load_ddl() -> list[str]:
    """The chunk DDL without the secondary indexes and triggers (they come after COPY)."""
    later = ("USING hnsw", "USING gin", "CREATE INDEX", "TRIGGER", "FUNCTION", "chunks_terms")
    # (the ALTER keeping vectors in the row must come before COPY: it stays)
    return [s for s in postgres_ddl(384) if not any(word in s for word in later)]


async def pg_build(
    url: str, base: corpus.BaseCorpus, total: int, maintenance_work_mem: str, workers: int
) -> dict[str, Any]:
    """Load ``total`` chunks with COPY, then build every index; returns the timings."""
    conn = await asyncpg.connect(pg_raw_url(url))
    try:
        await conn.execute("DROP TABLE IF EXISTS chunks CASCADE")
        await conn.execute("DROP TABLE IF EXISTS chunks_terms")
        for statement in pg_load_ddl():
            await conn.execute(statement)
    finally:
        await conn.close()
    conn = await pg_connect(url)
    figures: dict[str, Any] = {"load_avg_at_start": os.getloadavg()}
    try:
        started = time.perf_counter()
        for batch in corpus.batches(base, total):
            rows = []
            for i in range(batch.count):
                c = base.chunks[i]
                rows.append(
                    (
                        batch.chunk_id(i),
                        batch.document_id(c),
                        batch.owner_id,
                        c.ordinal,
                        c.heading,
                        c.text,
                        1,
                        1,
                        "",
                        c.char_start,
                        c.char_end,
                        c.token_count,
                        "minilm",
                        batch.vectors[i],
                    )
                )
            await conn.copy_records_to_table("chunks", records=rows, columns=PG_COPY_COLUMNS)
        figures["copy_s"] = round(time.perf_counter() - started, 1)
        await conn.execute(f"SET maintenance_work_mem = '{maintenance_work_mem}'")
        await conn.execute(f"SET max_parallel_maintenance_workers = {int(workers)}")
        steps = {
            "owner_btree_s": "CREATE INDEX IF NOT EXISTS ix_chunks_owner_id ON chunks (owner_id)",
            "document_btree_s": (
                "CREATE INDEX IF NOT EXISTS ix_chunks_document_id ON chunks (document_id, ordinal)"
            ),
            "gin_s": "CREATE INDEX IF NOT EXISTS ix_chunks_tsv ON chunks USING gin (tsv)",
            "hnsw_s": hnsw_index_ddl(384),
        }
        for name, statement in steps.items():
            started = time.perf_counter()
            await conn.execute(statement)
            figures[name] = round(time.perf_counter() - started, 1)
            print(json.dumps({name: figures[name]}), file=sys.stderr, flush=True)
        started = time.perf_counter()
        for statement in term_stats_ddl() + rebuild_term_stats_sql():
            await conn.execute(statement)
        figures["term_stats_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        await conn.execute("VACUUM ANALYZE chunks")
        await conn.execute("VACUUM ANALYZE chunks_terms")
        figures["vacuum_analyze_s"] = round(time.perf_counter() - started, 1)
        figures["hnsw"] = {"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION}
        figures["maintenance_work_mem"] = maintenance_work_mem
        figures["parallel_maintenance_workers"] = workers
        figures["load_avg_at_end"] = os.getloadavg()
        await conn.execute("CREATE TABLE bench_build (figures JSONB NOT NULL)")
        await conn.execute("INSERT INTO bench_build VALUES ($1::jsonb)", json.dumps(figures))
    finally:
        await conn.close()
    return figures


async def pg_sizes(engine: AsyncEngine) -> dict[str, float]:
    """Table (heap + TOAST) and index sizes in MB."""
    sql = (
        "SELECT c.relname, pg_relation_size(c.oid) + COALESCE(pg_relation_size(c.reltoastrelid), 0)"
        " FROM pg_class c WHERE c.relname IN ('chunks', 'chunks_terms') OR c.oid IN "
        "(SELECT indexrelid FROM pg_index WHERE indrelid = to_regclass('chunks'))"
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(text(sql))).all()
        database = (
            await conn.execute(text("SELECT pg_database_size(current_database())"))
        ).scalar_one()
    sizes = {str(name): round(int(size) / 2**20, 1) for name, size in rows}
    sizes["database"] = round(int(database) / 2**20, 1)
    return sizes


# --------------------------------------------------------------------------- PostgreSQL queries


async def pg_timed(
    engine: AsyncEngine,
    queries: Sequence[int],
    call: Callable[[AsyncConnection, int], Awaitable[list[str]]],
) -> tuple[dict[str, float], list[list[str]]]:
    """Latency percentiles of ``call`` per query (one connection, a transaction each)."""
    samples, found = [], []
    async with engine.connect() as conn:
        for q in queries:
            started = time.perf_counter()
            async with conn.begin():
                ids = await call(conn, q)
            samples.append((time.perf_counter() - started) * 1000)
            found.append(ids)
    return corpus.percentiles(samples), found


def pg_index(conn: AsyncConnection, options: dict[str, Any]) -> PostgresChunkIndex:
    """The store's index with the options under test."""
    return PostgresChunkIndex(conn, **options)


async def pg_query_figures(
    engine: AsyncEngine,
    base: corpus.BaseCorpus,
    total: int,
    queries: Sequence[int],
    options: dict[str, Any],
) -> dict[str, Any]:
    """Keyword, vector and hybrid latencies (one owner / all owners) and vector recall@10."""
    owner0 = corpus.owner_id(0)
    texts = base.query_texts
    vectors = base.query_vectors
    embedder = corpus.PrecomputedEmbedder([texts[q] for q in queries], vectors[list(queries)])
    owner0_docs = sorted(
        {
            b.document_id(base.chunks[i])
            for b in corpus.batches(base, total)
            if b.owner_id == owner0
            for i in range(b.count)
        }
    )
    scope_docs = owner0_docs[:20]
    report: dict[str, Any] = {}
    for label, owner, docs in (
        ("all", None, None),
        ("owner", owner0, None),
        ("owner_all_documents", owner0, owner0_docs),
        ("document_scope_20", owner0, scope_docs),
    ):

        def keyword(
            conn: AsyncConnection, q: int, owner: str | None = owner, docs: Any = docs
        ) -> Awaitable[list[str]]:
            return _ids(pg_index(conn, options).keyword_search(texts[q], owner, docs, K))

        def vector(
            conn: AsyncConnection, q: int, owner: str | None = owner, docs: Any = docs
        ) -> Awaitable[list[str]]:
            return _ids(pg_index(conn, options).vector_search(vectors[q], owner, docs, K))

        def hybrid(
            conn: AsyncConnection, q: int, owner: str | None = owner, docs: Any = docs
        ) -> Awaitable[list[str]]:
            searcher = HybridSearcher(pg_index(conn, options), embedder)
            return _hit_ids(searcher.search(texts[q], owner, docs, HYBRID_K, mode="hybrid"))

        async def hybrid_paired(
            conn: AsyncConnection, q: int, owner: str | None = owner, docs: Any = docs
        ) -> list[str]:
            # As the app searches on PostgreSQL: the vector query on a second connection.
            async with engine.connect() as second, second.begin():
                searcher = HybridSearcher(
                    pg_index(conn, options),
                    embedder,
                    vector_index=pg_index(second, options),
                )
                return await _hit_ids(
                    searcher.search(texts[q], owner, docs, HYBRID_K, mode="hybrid")
                )

        entry: dict[str, Any] = {}
        entry["keyword"], _ = await pg_timed(engine, queries, keyword)
        entry["vector"], found = await pg_timed(engine, queries, vector)
        entry["hybrid_one_connection"], _ = await pg_timed(engine, queries, hybrid)
        entry["hybrid"], _ = await pg_timed(engine, queries, hybrid_paired)
        entry["vector_short_results"] = sum(len(ids) < K for ids in found)
        if docs is None:
            truth = corpus.exact_top_k(base, total, k=K, owner=None if owner is None else 0)
            entry["vector_recall@10"] = corpus.recall_at_k(found, truth[list(queries)], base.size)
        report[label] = entry
        print(json.dumps({label: entry}), file=sys.stderr, flush=True)
    return report


async def pg_forced_paths(
    engine: AsyncEngine, base: corpus.BaseCorpus, total: int, queries: Sequence[int]
) -> dict[str, Any]:
    """One owner's vector search by each path: exact (btree on owner) vs HNSW iterative scans."""
    owner0 = corpus.owner_id(0)
    truth = corpus.exact_top_k(base, total, k=K, owner=0)[list(queries)]
    out: dict[str, Any] = {}
    for label, options in (
        ("exact_owner_rows", {"exact_scan_rows": 10**9}),
        ("hnsw_relaxed_order", {"exact_scan_rows": 0}),
        ("hnsw_strict_order", {"exact_scan_rows": 0, "iterative_scan": "strict_order"}),
    ):

        def vector(conn: AsyncConnection, q: int, options: dict[str, Any] = options) -> Any:
            index = pg_index(conn, options)
            return _ids(index.vector_search(base.query_vectors[q], owner0, None, K))

        latency, found = await pg_timed(engine, queries, vector)
        out[label] = {**latency, "recall@10": corpus.recall_at_k(found, truth, base.size)}
        print(json.dumps({label: out[label]}), file=sys.stderr, flush=True)
    return out


async def pg_ef_sweep(
    engine: AsyncEngine,
    base: corpus.BaseCorpus,
    total: int,
    queries: Sequence[int],
    ef_values: Sequence[int],
    rescore_values: Sequence[int],
) -> list[dict[str, Any]]:
    """Recall@10 and latency of the unfiltered vector search per ef_search and rescoring."""
    truth = corpus.exact_top_k(base, total, k=K)[list(queries)]
    rows = []
    for ef in ef_values:
        for rescore in rescore_values:
            options = {"ef_search": ef, "rescore_candidates": rescore}

            def vector(conn: AsyncConnection, q: int, options: dict[str, Any] = options) -> Any:
                return _ids(
                    pg_index(conn, options).vector_search(base.query_vectors[q], None, None, K)
                )

            latency, found = await pg_timed(engine, queries, vector)
            row = {**options, **latency, "recall@10": corpus.recall_at_k(found, truth, base.size)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


async def pg_ndcg(
    engine: AsyncEngine, base: corpus.BaseCorpus, total: int, data_dir: str, budgets: Sequence[int]
) -> dict[str, Any]:
    """SciFact test nDCG@10 / Recall@100 of owner 0 per mode and keyword budget.

    Owner 0's first copy is SciFact itself (real vectors), so this is ``botgpt eval
    retrieval``'s measure (300 chunks per list, documents ranked by their best chunk) inside
    the scaled database.
    """
    from botgpt.documents.evaluation import EVAL_CHUNK_DEPTH
    from botgpt.retrieval.eval import load_beir, ndcg_at_k, recall_at_k
    from botgpt.retrieval.search import SearchParams

    qrels = load_beir(data_dir).qrels["test"]
    owner0 = corpus.owner_id(0)
    # Every copy owner 0 holds maps back to SciFact's documents (copies of one document count
    # once, like a document's several chunks).
    scifact_id = {
        batch.document_id(c): c.doc_id
        for batch in corpus.batches(base, total)
        if batch.owner_id == owner0
        for c in base.chunks[: batch.count]
    }
    embedder = corpus.PrecomputedEmbedder(base.query_texts, base.query_vectors)
    out: dict[str, Any] = {}
    for budget in budgets:
        for mode in ("keyword", "vector", "hybrid"):
            if mode == "vector" and budget != budgets[0]:
                continue
            run: dict[str, list[str]] = {}
            async with engine.connect() as conn:
                for qid, query in zip(base.query_ids, base.query_texts, strict=True):
                    async with conn.begin():
                        index = pg_index(conn, {"rank_budget": budget})
                        params = SearchParams(mode=mode, candidates=EVAL_CHUNK_DEPTH)
                        searcher = HybridSearcher(index, embedder, params)
                        hits = await searcher.search(query, owner0, None, EVAL_CHUNK_DEPTH)
                    ranked = [
                        scifact_id[h.document_id] for h in hits if h.document_id in scifact_id
                    ]
                    run[qid] = list(dict.fromkeys(ranked))
            label = mode if mode == "vector" else f"{mode}_budget_{budget}"
            out[label] = {
                "ndcg@10": round(ndcg_at_k(run, qrels, 10), 4),
                "recall@100": round(recall_at_k(run, qrels, 100), 4),
            }
            print(json.dumps({label: out[label]}), file=sys.stderr, flush=True)
    return out


async def _ids(call: Awaitable[Sequence[Any]]) -> list[str]:
    return [hit.chunk_id for hit in await call]


async def _hit_ids(call: Awaitable[Sequence[Any]]) -> list[str]:
    return [hit.chunk_id for hit in await call]


async def pg_run(args: argparse.Namespace) -> dict[str, Any]:
    """Build (or reuse) the PostgreSQL database of ``--chunks`` rows and measure it."""
    base = corpus.load_base(args.data, args.cache)
    name = f"botgpt_scale_{args.chunks}"
    url, built = await pg_database(args.pg_url, name, args.rebuild)
    if built:
        conn = await asyncpg.connect(pg_raw_url(url))
        try:
            build = json.loads(await conn.fetchval("SELECT figures FROM bench_build"))
        finally:
            await conn.close()
        build["reused"] = True
    else:
        build = await pg_build(url, base, args.chunks, args.maintenance_work_mem, args.workers)
    engine = create_async_engine(url, pool_size=2)
    try:
        queries = list(range(min(args.queries, len(base.query_ids))))
        report: dict[str, Any] = {
            "store": "postgres",
            "chunks": args.chunks,
            "owners": corpus.OWNERS,
            "owner0_chunks": sum(
                b.count
                for b in corpus.batches(base, args.chunks)
                if b.owner_id == corpus.owner_id(0)
            ),
            "queries": len(queries),
            "load_avg_at_start": os.getloadavg(),
            "database": name,
            "build": build,
            "sizes_mb": await pg_sizes(engine),
        }
        if not args.skip_search:
            # A first pass warms the caches the way a running server's would be.
            await pg_query_figures(engine, base, args.chunks, queries[:20], {})
            report["search"] = await pg_query_figures(engine, base, args.chunks, queries, {})
        if args.ndcg:
            budgets = [RANK_BUDGET, *args.budget_sweep]
            report["scifact_owner0"] = await pg_ndcg(engine, base, args.chunks, args.data, budgets)
        if args.paths:
            report["owner_vector_paths"] = await pg_forced_paths(engine, base, args.chunks, queries)
        if args.ef_sweep:
            report["ef_sweep"] = await pg_ef_sweep(
                engine, base, args.chunks, queries, args.ef_sweep, args.rescore_sweep
            )
        report["load_avg_at_end"] = os.getloadavg()
    finally:
        await engine.dispose()
    return report


def _ints(value: str) -> list[int]:
    return [int(part) for part in value.split(",") if part]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["postgres", "sqlite"], required=True)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300, help="SciFact test queries used")
    parser.add_argument("--data", default=corpus.DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=corpus.DEFAULT_CACHE)
    parser.add_argument("--pg-url", default=os.environ.get("BOTGPT_TEST_PG_URL", DEFAULT_PG))
    parser.add_argument("--rebuild", action="store_true", help="drop the kept database first")
    parser.add_argument("--maintenance-work-mem", default="3GB")
    parser.add_argument("--workers", type=int, default=1, help="parallel index build workers")
    parser.add_argument("--paths", action="store_true", help="exact vs HNSW for one owner")
    parser.add_argument("--ndcg", action="store_true", help="SciFact nDCG@10 of owner 0")
    parser.add_argument("--budget-sweep", type=_ints, default=[], help="keyword rank budgets")
    parser.add_argument("--skip-search", action="store_true", help="only the optional parts")
    parser.add_argument("--ef-sweep", type=_ints, default=[], help="e.g. 40,100,200")
    parser.add_argument("--rescore-sweep", type=_ints, default=[40], help="e.g. 10,40,100")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.store != "postgres":
        raise SystemExit("--store sqlite: see the SQLite functions")
    report = asyncio.run(pg_run(args))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
