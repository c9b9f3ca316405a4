"""Retrieval at scale: keyword, vector and hybrid search over 10k..1M chunks, per store.

The corpus is bench/scale_corpus.py's (SciFact chunks copied with perturbed vectors across 100
owners; the 300 test queries with their vectors; exact ground truth). Each store's index is
built once per size and cached on disk under --cache; later runs only measure. Prints one JSON
object: build time, disk and memory, p50/p95 of keyword, vector and hybrid search filtered to
one owner (owner 0) and across all owners, and recall@10 of the vector search against exact
float search.

    .venv/bin/python bench/scale_retrieval.py --store sqlite --chunks 100000
    .venv/bin/python bench/scale_retrieval.py --store sqlite --chunks 1000000 --sweep

Latencies are ``HybridSearcher.search`` (k=10, 50 candidates per list as in the app) on one
connection. ``--embedder minilm`` (default) embeds each query with the bundled MiniLM, as a
chat turn does (hybrid overlaps that with the keyword query); ``--embedder cached`` hands over
the precomputed query vector, leaving the database's own cost. ``--sweep`` (SQLite) measures
recall and coarse-scan latency of each quantiser and oversampling factor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale_corpus as corpus

from botgpt.db import make_engine, sqlite_connect
from botgpt.retrieval.embedders import Embedder, MiniLMOnnxEmbedder
from botgpt.retrieval.eval import load_beir, ndcg_at_k, recall_at_k
from botgpt.retrieval.keywords import fts5_match_expression, keyword_terms
from botgpt.retrieval.search import HybridSearcher, SearchMode, SearchParams
from botgpt.retrieval.sqlite_store import (
    DEFAULT_OVERSAMPLE,
    DEFAULT_QUANTIZER,
    Quantizer,
    SqliteChunkIndex,
    owner_token,
    quantize,
    sqlite_ddl,
    vec_constructor,
)
from botgpt.retrieval.stores import ChunkIndex

K = 10
MODES: tuple[SearchMode, ...] = ("keyword", "vector", "hybrid")
_LAYOUT = "v2"  # bump when the cached database layout changes


# --------------------------------------------------------------------------- shared measuring


async def measure_latencies(
    make_index: Callable[[Any], ChunkIndex],
    engine: AsyncEngine,
    embedder: Embedder,
    queries: Sequence[str],
    owner: str | None,
) -> dict[str, dict[str, float]]:
    """p50/p95 of each search mode over ``queries`` (one connection, rolled back per query)."""
    out: dict[str, dict[str, float]] = {}
    async with engine.connect() as conn:
        searcher = HybridSearcher(make_index(conn), embedder)
        await searcher.search("warm up the statement cache", owner, None, K)
        await conn.rollback()
        for mode in MODES:
            samples = []
            for query in queries:
                started = time.perf_counter()
                await searcher.search(query, owner, None, K, mode=mode)
                samples.append((time.perf_counter() - started) * 1000)
                await conn.rollback()
            out[mode] = corpus.percentiles(samples)
        # Hybrid with the vector query on a second connection (its own thread), at once.
        async with engine.connect() as second:
            paired = HybridSearcher(make_index(conn), embedder, vector_index=make_index(second))
            samples = []
            for query in queries:
                started = time.perf_counter()
                await paired.search(query, owner, None, K, mode="hybrid")
                samples.append((time.perf_counter() - started) * 1000)
                await conn.rollback()
                await second.rollback()
            out["hybrid_two_connections"] = corpus.percentiles(samples)
    if not isinstance(embedder, corpus.PrecomputedEmbedder):
        samples = []
        for query in queries:
            started = time.perf_counter()
            await embedder.embed_query(query)
            samples.append((time.perf_counter() - started) * 1000)
        out["query_embedding_alone"] = corpus.percentiles(samples)
    return out


async def measure_recall(
    make_index: Callable[[Any], ChunkIndex],
    engine: AsyncEngine,
    base: corpus.BaseCorpus,
    total: int,
    owner: int | None,
    cache: Path,
    queries: int,
) -> dict[str, Any]:
    """recall@10 of ``vector_search`` against exact cosine, and whether any came back short."""
    truth = corpus.exact_top_k(base, total, K, owner=owner, cache=cache)[:queries]
    owner_id = None if owner is None else corpus.owner_id(owner)
    found: list[list[str]] = []
    short = foreign = 0
    async with engine.connect() as conn:
        index = make_index(conn)
        for vector in base.query_vectors[:queries]:
            hits = await index.vector_search(vector, owner_id, None, K)
            found.append([h.chunk_id for h in hits])
            short += len(hits) < K
            foreign += sum(owner_id is not None and h.owner_id != owner_id for h in hits)
    return {
        "recall_at_10": corpus.recall_at_k(found, truth, base.size),
        "queries": len(found),
        "short_results": short,
        "other_owners_results": foreign,
    }


async def measure_ndcg(
    make_index: Callable[[Any], ChunkIndex],
    engine: AsyncEngine,
    base: corpus.BaseCorpus,
    data_dir: str,
) -> dict[str, float]:
    """SciFact test nDCG@10 / Recall@100 per mode over owner 0's first copy (the unperturbed
    corpus, chunked and embedded as `botgpt eval retrieval` does), 300 chunks per query."""
    qrels = load_beir(data_dir).qrels["test"]
    doc_of = {corpus.chunk_id(0, i): c.doc_id for i, c in enumerate(base.chunks)}
    embedder = corpus.PrecomputedEmbedder(base.query_texts, base.query_vectors)
    params = SearchParams(candidates=300)
    out: dict[str, float] = {}
    async with engine.connect() as conn:
        searcher = HybridSearcher(make_index(conn), embedder, params)
        for mode in MODES:
            run: dict[str, list[str]] = {}
            for query_id, query in zip(base.query_ids, base.query_texts, strict=True):
                hits = await searcher.search(query, corpus.owner_id(0), None, 300, mode=mode)
                run[query_id] = [doc_of[h.chunk_id] for h in hits]
            out[f"{mode}_ndcg_at_10"] = round(ndcg_at_k(run, qrels, 10), 4)
            out[f"{mode}_recall_at_100"] = round(recall_at_k(run, qrels, 100), 4)
    return out


# --------------------------------------------------------------------------- SQLite


def sqlite_path(cache: Path, total: int, quantizer: Quantizer) -> Path:
    """Where the SQLite index of this size and quantiser is cached."""
    return cache / f"sqlite_{total}_{quantizer}.db"


def sqlite_build(
    base: corpus.BaseCorpus, total: int, path: Path, quantizer: Quantizer
) -> dict[str, Any]:
    """Bulk-load the corpus into a fresh SQLite index (the store's own DDL and encodings)."""
    conn = sqlite_connect(str(path))
    if _sqlite_meta(conn) == _sqlite_stamp(total, quantizer):
        conn.close()
        return {"cached": True}
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = sqlite_connect(str(path))
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    for statement in sqlite_ddl(384, quantizer):
        conn.execute(statement)
    constructor = vec_constructor(quantizer)
    started = time.perf_counter()
    seconds = {"chunks": 0.0, "vectors": 0.0, "keywords": 0.0}
    for batch in corpus.batches(base, total):
        first = batch.copy * base.size + 1
        seqs = range(first, first + batch.count)
        chunks = base.chunks[: batch.count]
        t0 = time.perf_counter()
        conn.executemany(
            "INSERT INTO chunks (id, seq, document_id, owner_id, ordinal, heading, text, page, "
            "char_start, char_end, token_count, embedding_model) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, 'minilm')",
            [
                (
                    batch.chunk_id(i),
                    seq,
                    batch.document_id(c),
                    batch.owner_id,
                    c.ordinal,
                    c.heading,
                    c.text,
                    c.char_start,
                    c.char_end,
                    c.token_count,
                )
                for i, (seq, c) in enumerate(zip(seqs, chunks, strict=True))
            ],
        )
        t1 = time.perf_counter()
        compact = quantize(batch.vectors, quantizer)
        conn.executemany(
            "INSERT INTO chunks_vec (rowid, owner_id, document_id, embedding, vector) "
            f"VALUES (?, ?, ?, {constructor}(?), ?)",
            [
                (seq, batch.owner_id, batch.document_id(c), compact[i].tobytes(), v.tobytes())
                for i, (seq, c, v) in enumerate(zip(seqs, chunks, batch.vectors, strict=True))
            ],
        )
        t2 = time.perf_counter()
        token = owner_token(batch.owner_id)
        conn.executemany(
            "INSERT INTO chunks_fts (rowid, heading, text, owner) VALUES (?, ?, ?, ?)",
            [(seq, c.heading, c.text, token) for seq, c in zip(seqs, chunks, strict=True)],
        )
        conn.commit()
        t3 = time.perf_counter()
        seconds["chunks"] += t1 - t0
        seconds["vectors"] += t2 - t1
        seconds["keywords"] += t3 - t2
    conn.execute("CREATE TABLE bench_meta (stamp TEXT)")
    conn.execute("INSERT INTO bench_meta VALUES (?)", (_sqlite_stamp(total, quantizer),))
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return {
        "cached": False,
        "build_s": round(time.perf_counter() - started, 1),
        "build_s_by_table": {name: round(value, 1) for name, value in seconds.items()},
    }


def _sqlite_stamp(total: int, quantizer: Quantizer) -> str:
    return f"{_LAYOUT}/{total}/{quantizer}"


def _sqlite_meta(conn: Any) -> str | None:
    try:
        row = conn.execute("SELECT stamp FROM bench_meta").fetchone()
    except Exception:  # a missing table means an unfinished or older build
        return None
    return str(row[0]) if row else None


def sqlite_sizes(path: Path) -> dict[str, float]:
    """MB on disk: the whole file and each table's share (dbstat)."""
    conn = sqlite_connect(str(path))
    try:
        rows = conn.execute(
            "SELECT CASE WHEN name LIKE 'chunks_vec%' THEN 'chunks_vec' "
            "WHEN name LIKE 'chunks_fts%' THEN 'chunks_fts' ELSE 'chunks' END AS part, "
            "SUM(pgsize) FROM dbstat GROUP BY part"
        ).fetchall()
        parts = {str(name): round(size / 2**20, 1) for name, size in rows}
    except Exception:  # dbstat may be missing from a build of SQLite
        parts = {}
    finally:
        conn.close()
    return {"file_mb": corpus.disk_mb(path), **{f"{k}_mb": v for k, v in parts.items()}}


def sqlite_sweep(
    base: corpus.BaseCorpus,
    total: int,
    path: Path,
    quantizer: Quantizer,
    owner: int | None,
    queries: int,
) -> list[dict[str, Any]]:
    """recall@10 and latency of coarse scan + exact rescoring for several oversampling factors.

    One coarse KNN of the largest candidate list per query; each factor keeps its prefix.
    """
    factors = (1, 2, 3, 4, 6, 8, 12, 16, 24)
    truth = corpus.exact_top_k(base, total, K, owner=owner, cache=path.parent)[:queries]
    conn = sqlite_connect(str(path))
    where = "" if owner is None else " AND owner_id = ?"
    extra: tuple[str, ...] = () if owner is None else (corpus.owner_id(owner),)
    constructor = vec_constructor(quantizer)
    found: dict[int, list[list[int]]] = {f: [] for f in factors}
    timing: dict[int, list[float]] = {f: [] for f in factors}
    for q in base.query_vectors[:queries]:
        compact = quantize(q, quantizer).tobytes()
        for factor in factors:
            started = time.perf_counter()
            rows = conn.execute(
                "SELECT rowid, vector FROM chunks_vec "
                f"WHERE embedding MATCH {constructor}(?) AND k = ?{where}",
                (compact, K * factor, *extra),
            ).fetchall()
            vectors = np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(-1, 384)
            order = np.argsort(-(vectors @ q), kind="stable")[:K]
            timing[factor].append((time.perf_counter() - started) * 1000)
            found[factor].append([rows[i][0] - 1 for i in order])
    conn.close()
    out = []
    for factor in factors:
        recall = np.mean(
            [len(set(f) & set(t.tolist())) / K for f, t in zip(found[factor], truth, strict=True)]
        )
        out.append(
            {
                "oversample": factor,
                "recall_at_10": round(float(recall), 4),
                **corpus.percentiles(timing[factor]),
            }
        )
    return out


def sqlite_keyword_strategies(
    path: Path, queries: Sequence[str], owner: str, k: int = 50
) -> dict[str, dict[str, float]]:
    """One owner's keyword search (50 hits, as hybrid fetches) three ways, on the same index:
    the owner token inside the MATCH with only the best k joined to their rows (the store's
    query), the same ranking without the token (owner checked on every match), and the
    previous query (every match joined to its row, then filtered and sorted)."""
    token = f' AND owner : "{owner_token(owner)}"'
    ranked = (
        "WITH r AS (SELECT rowid AS seq, -bm25(chunks_fts, 1.0, 1.0, 0.0) AS score "
        "FROM chunks_fts WHERE chunks_fts MATCH :match{scope} ORDER BY score DESC LIMIT :k) "
        "SELECT c.id, c.text, r.score FROM r JOIN chunks c ON c.seq = r.seq{check} "
        "ORDER BY r.score DESC"
    )
    strategies = {
        "owner_token_in_match": ranked.format(scope="", check=" WHERE c.owner_id = :owner"),
        "owner_checked_per_match": ranked.format(
            scope=" AND +rowid IN (SELECT seq FROM chunks WHERE owner_id = :owner)", check=""
        ),
        "join_then_filter": (
            "SELECT c.id, c.text, -bm25(chunks_fts, 1.0, 1.0, 0.0) AS score "
            "FROM chunks_fts JOIN chunks c ON c.seq = chunks_fts.rowid "
            "WHERE chunks_fts MATCH :match AND c.owner_id = :owner ORDER BY score DESC LIMIT :k"
        ),
    }
    conn = sqlite_connect(str(path))
    out: dict[str, dict[str, float]] = {}
    for name, sql in strategies.items():
        samples = []
        for query in queries:
            match = "{heading text} : (" + fts5_match_expression(keyword_terms(query)) + ")"
            if name == "owner_token_in_match":
                match += token
            started = time.perf_counter()
            conn.execute(sql, {"match": match, "k": k, "owner": owner}).fetchall()
            samples.append((time.perf_counter() - started) * 1000)
        out[name] = corpus.percentiles(samples)
    conn.close()
    return out


async def sqlite_run(args: argparse.Namespace) -> dict[str, Any]:
    """Build (or reuse) the SQLite index at --chunks and measure it."""
    base = corpus.load_base(args.data, args.cache)
    report: dict[str, Any] = {"store": "sqlite", "chunks": args.chunks}
    path = sqlite_path(args.cache, args.chunks, args.quantizer)
    report["build"] = await asyncio.to_thread(sqlite_build, base, args.chunks, path, args.quantizer)
    report["disk"] = sqlite_sizes(path)
    report["owner0_chunks"] = corpus.owner_chunk_count(base, args.chunks, 0)
    report["quantizer"], report["oversample"] = args.quantizer, args.oversample
    if args.keyword_strategies:
        report["keyword_strategies_one_owner"] = await asyncio.to_thread(
            sqlite_keyword_strategies, path, base.query_texts[: args.queries], corpus.owner_id(0)
        )
        return report
    if args.sweep:
        report["sweep"] = {
            scope: sqlite_sweep(base, args.chunks, path, args.quantizer, owner, args.recall_queries)
            for scope, owner in (("one_owner", 0), ("all_owners", None))
        }
        return report

    def make_index(conn: Any) -> ChunkIndex:
        return SqliteChunkIndex(conn, quantizer=args.quantizer, oversample=args.oversample)

    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        if args.ndcg:
            report["scifact_test"] = await measure_ndcg(make_index, engine, base, args.data)
            return report
        report["recall"] = {
            scope: await measure_recall(
                make_index, engine, base, args.chunks, owner, args.cache, args.recall_queries
            )
            for scope, owner in (("one_owner", 0), ("all_owners", None))
        }
        embedder = _embedder(args, base)
        queries = base.query_texts[: args.queries]
        for scope, owner in (("one_owner", corpus.owner_id(0)), ("all_owners", None)):
            report[scope] = await measure_latencies(make_index, engine, embedder, queries, owner)
    finally:
        await engine.dispose()
    report["peak_rss_mb"] = corpus.peak_rss_mb()
    return report


# --------------------------------------------------------------------------- main


def _embedder(args: argparse.Namespace, base: corpus.BaseCorpus) -> Embedder:
    if args.embedder == "cached":
        return corpus.PrecomputedEmbedder(base.query_texts, base.query_vectors)
    return MiniLMOnnxEmbedder()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--data", default=corpus.DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=corpus.DEFAULT_CACHE)
    parser.add_argument("--queries", type=int, default=100, help="queries timed per mode")
    parser.add_argument("--recall-queries", type=int, default=300)
    parser.add_argument("--embedder", choices=["minilm", "cached"], default="minilm")
    parser.add_argument("--quantizer", choices=["levels", "int8"], default=DEFAULT_QUANTIZER)
    parser.add_argument("--oversample", type=int, default=DEFAULT_OVERSAMPLE)
    parser.add_argument("--sweep", action="store_true", help="recall/latency per oversampling")
    parser.add_argument("--keyword-strategies", action="store_true")
    parser.add_argument("--ndcg", action="store_true", help="SciFact test nDCG@10 of owner 0")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.store != "sqlite":
        raise SystemExit(f"--store {args.store}: not in this script yet")
    report = asyncio.run(sqlite_run(args))
    report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
