"""SciFact benchmark of the documents pipeline (parse -> chunk -> embed -> index -> search).

Prints one JSON object: nDCG@10 / Recall@100 of bm25, vector and hybrid search on the 300 test
queries for the SQLite (sqlite-vec + FTS5) and PostgreSQL (pgvector + tsvector) indexes,
ingestion throughput, query latency per mode, and hybrid latency on SQLite at 100k+ chunks.

    .venv/bin/python bench/scifact.py            # evaluate the chosen parameters
    .venv/bin/python bench/scifact.py --tune     # grid search on the 809 TRAIN queries only

Parameters are chosen with --tune on train queries, never on test. Chunk/query embeddings are
cached under --cache (default /tmp/botgpt-bench) so iterations are fast; the throughput figure
is measured with a cold (uncached) embedder unless --cached-throughput is given.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import numpy as np
from numpy.typing import NDArray
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from botgpt.db import make_engine
from botgpt.documents.chunking import Chunk, chunk_document, chunk_record, embedding_text
from botgpt.documents.parsing import parse_document
from botgpt.retrieval.embedders import Embedder, MiniLMOnnxEmbedder, Vectors
from botgpt.retrieval.eval import BeirDataset, CorpusDoc, load_beir, ndcg_at_k, recall_at_k
from botgpt.retrieval.hybrid import Hit, convex_fusion, reciprocal_rank_fusion
from botgpt.retrieval.pg_store import PostgresChunkIndex
from botgpt.retrieval.search import HybridSearcher, SearchMode, SearchParams
from botgpt.retrieval.sqlite_store import SqliteChunkIndex
from botgpt.retrieval.stores import ChunkIndex, ScoredChunk, ddl_statements

DEFAULT_DATA = "/work/shared/eval/scifact"
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:55432/botgpt_test"
OWNER = "00000000-0000-0000-0000-00000000beef"
EVAL_CHUNKS = 300  # chunk candidates per list; ~2 chunks per abstract -> >100 documents


@dataclass(frozen=True)
class Config:
    """Everything that was tuned on the train queries (see --tune)."""

    chunk_tokens: int = 256
    overlap_tokens: int = 32
    fusion: str = "rrf"
    rrf_k: float = 60.0
    keyword_weight: float = 1.0
    vector_weight: float = 1.0
    alpha: float = 0.5
    sqlite_heading_weight: float = 1.0
    pg_rank_function: str = "ts_rank"
    pg_rank_normalization: int = 1
    pg_weights: tuple[float, float, float, float] = (0.1, 0.2, 0.4, 1.0)  # labels D, C, B, A


# Chosen with --tune on the 809 train queries: 256/32 chunks are within 0.003 nDCG@10 of the
# best chunkings (128/32, 384/32) and, unlike 384, fit MiniLM's 256-token window; RRF k=1 was
# the best RRF at 50 and at 300 candidates; idf_ts_rank beat ts_rank/ts_rank_cd on PostgreSQL.
CHOSEN = Config(
    chunk_tokens=256,
    overlap_tokens=32,
    fusion="rrf",
    rrf_k=1.0,
    keyword_weight=1.0,
    vector_weight=1.0,
    alpha=0.4,
    sqlite_heading_weight=1.0,
    pg_rank_function="idf_ts_rank",
    pg_rank_normalization=1,
    pg_weights=(0.1, 0.2, 1.0, 1.0),
)


# --------------------------------------------------------------------------- embeddings cache


class CachedEmbedder(Embedder):
    """Wraps an embedder with a persistent text -> vector cache (keyed by sha1 of the text)."""

    def __init__(self, inner: Embedder, path: Path) -> None:
        self.inner, self.path = inner, path
        self.name, self.dimension = inner.name, inner.dimension
        self.cache: dict[str, NDArray[np.float32]] = {}
        if path.exists():
            with np.load(path) as data:
                self.cache = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
        self.dirty = False

    async def embed(self, texts: Sequence[str]) -> Vectors:
        keys = [hashlib.sha1(t.encode()).hexdigest() for t in texts]
        missing = [i for i, key in enumerate(keys) if key not in self.cache]
        if missing:
            vectors = await self.inner.embed([texts[i] for i in missing])
            for i, vector in zip(missing, vectors, strict=True):
                self.cache[keys[i]] = vector
            self.dirty = True
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self.cache[key] for key in keys]).astype(np.float32)

    def save(self) -> None:
        if self.dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            keys = np.array(list(self.cache))
            vectors = np.stack(list(self.cache.values()))
            tmp = self.path.with_suffix(".tmp.npz")
            np.savez(tmp, keys=keys, vectors=vectors)
            tmp.replace(self.path)
            self.dirty = False


# --------------------------------------------------------------------------- ingestion


def document_chunks(doc: CorpusDoc, cfg: Config, count: MiniLMOnnxEmbedder) -> list[Chunk]:
    """The real upload path: Markdown bytes (title as heading) -> parse -> chunk."""
    data = f"# {doc.title}\n\n{doc.text}".encode()
    parsed = parse_document(data, f"{doc.id}.md")
    return chunk_document(
        parsed,
        chunk_tokens=cfg.chunk_tokens,
        overlap_tokens=cfg.overlap_tokens,
        count_tokens=count.count_tokens,
        token_offsets=count.token_offsets,  # tokenize each document once
    )


async def ingest(
    index: ChunkIndex,
    docs: Sequence[CorpusDoc],
    embedder: Embedder,
    cfg: Config,
    count: MiniLMOnnxEmbedder,
    owner: str = OWNER,
    batch_docs: int = 64,
) -> dict[str, Any]:
    """Chunk, embed and index ``docs``; returns timings."""
    t_chunk = t_embed = t_index = 0.0
    n_chunks = 0
    for start in range(0, len(docs), batch_docs):
        batch = docs[start : start + batch_docs]
        t0 = time.perf_counter()
        per_doc = [(doc, document_chunks(doc, cfg, count)) for doc in batch]
        flat = [(doc, chunk) for doc, chunks in per_doc for chunk in chunks]
        t1 = time.perf_counter()
        vectors = await embedder.embed([embedding_text(c) for _, c in flat])
        t2 = time.perf_counter()
        records = [
            chunk_record(
                c,
                chunk_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{owner}/{doc.id}/{c.ordinal}")),
                document_id=doc.id,
                owner_id=owner,
                embedding=vector,
            )
            for (doc, c), vector in zip(flat, vectors, strict=True)
        ]
        await index.add(records, embedding_model=embedder.name)
        t3 = time.perf_counter()
        t_chunk, t_embed, t_index = t_chunk + t1 - t0, t_embed + t2 - t1, t_index + t3 - t2
        n_chunks += len(records)
    total = t_chunk + t_embed + t_index
    return {
        "docs": len(docs),
        "chunks": n_chunks,
        "seconds": round(total, 2),
        "docs_per_s": round(len(docs) / total, 1),
        "chunk_s": round(t_chunk, 2),
        "embed_s": round(t_embed, 2),
        "index_s": round(t_index, 2),
    }


# --------------------------------------------------------------------------- engines


async def sqlite_engine(path: Path) -> AsyncEngine:
    await asyncio.to_thread(path.unlink, missing_ok=True)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        for statement in ddl_statements("sqlite", 384):
            await conn.execute(text(statement))
    return engine


async def pg_engine(url: str, name: str) -> AsyncEngine:
    raw = url.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(raw)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    engine = create_async_engine(url.rpartition("/")[0] + "/" + name)
    async with engine.begin() as conn:
        for statement in ddl_statements("postgresql", 384):
            await conn.execute(text(statement))
    return engine


def make_index(conn: Any, backend: str, cfg: Config) -> ChunkIndex:
    if backend == "sqlite":
        return SqliteChunkIndex(conn, heading_weight=cfg.sqlite_heading_weight)
    return PostgresChunkIndex(
        conn,
        rank_function=cfg.pg_rank_function,
        rank_normalization=cfg.pg_rank_normalization,
        rank_weights=cfg.pg_weights,
    )


# --------------------------------------------------------------------------- evaluation


def doc_ranking(items: Sequence[ScoredChunk] | Sequence[Hit], k: int = 100) -> list[str]:
    """Documents in order of their best chunk."""
    return list(dict.fromkeys(item.document_id for item in items))[:k]


def fuse(cfg: Config, keyword: Sequence[ScoredChunk], vector: Sequence[ScoredChunk]) -> list[Hit]:
    if cfg.fusion == "convex":
        return convex_fusion(keyword, vector, alpha=cfg.alpha)
    return reciprocal_rank_fusion(
        keyword,
        vector,
        k=cfg.rrf_k,
        keyword_weight=cfg.keyword_weight,
        vector_weight=cfg.vector_weight,
    )


async def result_lists(
    engine: AsyncEngine,
    backend: str,
    cfg: Config,
    queries: dict[str, str],
    query_vectors: dict[str, NDArray[np.float32]],
    depth: int = EVAL_CHUNKS,
    with_vector: bool = True,
) -> tuple[dict[str, list[ScoredChunk]], dict[str, list[ScoredChunk]]]:
    keyword: dict[str, list[ScoredChunk]] = {}
    vector: dict[str, list[ScoredChunk]] = {}
    async with engine.connect() as conn:
        index = make_index(conn, backend, cfg)
        for qid, query in queries.items():
            keyword[qid] = await index.keyword_search(query, OWNER, None, depth)
            if with_vector:
                vector[qid] = await index.vector_search(query_vectors[qid], OWNER, None, depth)
            await conn.rollback()  # end the transaction (PG SET LOCAL, snapshot)
    return keyword, vector


def metrics(
    cfg: Config,
    keyword: dict[str, list[ScoredChunk]],
    vector: dict[str, list[ScoredChunk]],
    qrels: dict[str, dict[str, int]],
    with_convex: bool = False,
) -> dict[str, dict[str, float]]:
    runs = {
        "bm25": {q: doc_ranking(r) for q, r in keyword.items()},
        "vector": {q: doc_ranking(r) for q, r in vector.items()},
        "hybrid": {q: doc_ranking(fuse(cfg, keyword[q], vector[q])) for q in keyword},
    }
    if with_convex and cfg.fusion != "convex":
        # The alternative fusion, for comparison: min-max normalised convex combination.
        runs["hybrid_convex"] = {
            q: doc_ranking(convex_fusion(keyword[q], vector[q], alpha=cfg.alpha)) for q in keyword
        }
    return {
        mode: {
            "ndcg@10": round(ndcg_at_k(run, qrels, 10), 4),
            "recall@100": round(recall_at_k(run, qrels, 100), 4),
        }
        for mode, run in runs.items()
    }


async def latencies(
    engine: AsyncEngine,
    backend: str,
    cfg: Config,
    embedder: Embedder,
    queries: Sequence[str],
    owner: str | None = OWNER,
    modes: Sequence[SearchMode] = ("keyword", "vector", "hybrid"),
    k: int = 10,
) -> dict[str, dict[str, float]]:
    """End-to-end HybridSearcher.search latency (query embedding included), in ms."""
    params = SearchParams(
        fusion="convex" if cfg.fusion == "convex" else "rrf",
        rrf_k=cfg.rrf_k,
        keyword_weight=cfg.keyword_weight,
        vector_weight=cfg.vector_weight,
        alpha=cfg.alpha,
    )
    out: dict[str, dict[str, float]] = {}
    async with engine.connect() as conn:
        searcher = HybridSearcher(make_index(conn, backend, cfg), embedder, params)
        await searcher.search("warm up", owner, None, k)
        await conn.rollback()
        for mode in modes:
            samples = []
            for query in queries:
                t0 = time.perf_counter()
                await searcher.search(query, owner, None, k, mode=mode)
                samples.append((time.perf_counter() - t0) * 1000)
                await conn.rollback()
            out[mode] = percentiles(samples)
    return out


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
        "n": len(ordered),
    }


# --------------------------------------------------------------------------- 100k chunks


async def scale_test(
    path: Path,
    docs: Sequence[CorpusDoc],
    embedder: Embedder,
    cached: CachedEmbedder,
    cfg: Config,
    count: MiniLMOnnxEmbedder,
    queries: Sequence[str],
    target_chunks: int = 100_000,
) -> dict[str, Any]:
    """Copies of the corpus under different owners until >= target chunks; hybrid latency."""
    engine = await sqlite_engine(path)
    owners: list[str] = []
    total = 0
    t0 = time.perf_counter()
    async with engine.connect() as conn:
        index = SqliteChunkIndex(conn, heading_weight=cfg.sqlite_heading_weight)
        while total < target_chunks:
            owner = str(uuid.UUID(int=len(owners) + 1))
            stats = await ingest(index, docs, cached, cfg, count, owner=owner, batch_docs=512)
            await conn.commit()
            owners.append(owner)
            total += int(stats["chunks"])
    build_s = time.perf_counter() - t0
    result: dict[str, Any] = {
        "chunks": total,
        "owners": len(owners),
        "build_seconds_cached_embeddings": round(build_s, 1),
        "queries": len(queries),
    }
    one_owner = await latencies(engine, "sqlite", cfg, embedder, queries, owner=owners[0])
    all_owners = await latencies(engine, "sqlite", cfg, embedder, queries, owner=None)
    result["filtered_to_one_owner"] = one_owner
    result["unfiltered_all_owners"] = all_owners
    await engine.dispose()
    await asyncio.to_thread(path.unlink, missing_ok=True)
    return result


# --------------------------------------------------------------------------- tuning


def grid_fusions() -> list[dict[str, Any]]:
    grid: list[dict[str, Any]] = []
    for rrf_k, kw in itertools.product((1, 5, 10, 20, 40, 60, 100), (0.5, 0.75, 1.0, 1.5, 2.0)):
        grid.append({"fusion": "rrf", "rrf_k": float(rrf_k), "keyword_weight": kw})
    for alpha in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        grid.append({"fusion": "convex", "alpha": alpha})
    return grid


async def tune(
    args: argparse.Namespace, data: BeirDataset, count: MiniLMOnnxEmbedder
) -> dict[str, Any]:
    """Grid search on the TRAIN queries only."""
    qrels = data.qrels["train"]
    queries = {q: data.queries[q] for q in qrels}
    qcache = CachedEmbedder(MiniLMOnnxEmbedder(), args.cache / "queries.npz")
    qvecs = dict(zip(queries, await qcache.embed(list(queries.values())), strict=True))
    qcache.save()
    chunk_cache = CachedEmbedder(MiniLMOnnxEmbedder(), args.cache / "chunks.npz")
    docs = list(data.corpus.values())
    report: dict[str, Any] = {"train_queries": len(queries), "chunking": [], "sqlite_bm25": []}
    best: tuple[float, Config] | None = None
    for chunk_tokens, overlap in args.chunk_grid:
        cfg = Config(chunk_tokens=chunk_tokens, overlap_tokens=overlap)
        engine = await sqlite_engine(args.cache / "tune.db")
        async with engine.connect() as conn:
            stats = await ingest(SqliteChunkIndex(conn), docs, chunk_cache, cfg, count)
            await conn.commit()
        chunk_cache.save()
        keyword, vector = await result_lists(engine, "sqlite", cfg, queries, qvecs)
        base = metrics(cfg, keyword, vector, qrels)
        rows = []
        for option in grid_fusions():
            trial = Config(**{**asdict(cfg), **option})
            hybrid = metrics(trial, keyword, vector, qrels)["hybrid"]
            rows.append({**option, **hybrid})
            if best is None or hybrid["ndcg@10"] > best[0]:
                best = (hybrid["ndcg@10"], trial)
        rows.sort(key=lambda r: -r["ndcg@10"])
        entry = {
            "chunk_tokens": chunk_tokens,
            "overlap": overlap,
            "chunks": stats["chunks"],
            **{m: v for m, v in base.items() if m != "hybrid"},
            "best_fusions": rows[:5],
        }
        report["chunking"].append(entry)
        print(json.dumps(entry), file=sys.stderr)
        if (chunk_tokens, overlap) == (args.chunk_grid[-1]):
            pass
        await engine.dispose()
    assert best is not None
    cfg = best[1]
    # Field weighting of BM25 (heading/title vs body) on the best chunking.
    engine = await sqlite_engine(args.cache / "tune.db")
    async with engine.connect() as conn:
        await ingest(SqliteChunkIndex(conn), docs, chunk_cache, cfg, count)
        await conn.commit()
    _, vector = await result_lists(engine, "sqlite", cfg, queries, qvecs)
    for weight in (0.5, 1.0, 2.0, 3.0):
        trial = Config(**{**asdict(cfg), "sqlite_heading_weight": weight})
        keyword, _ = await result_lists(engine, "sqlite", trial, queries, qvecs, with_vector=False)
        m = metrics(trial, keyword, vector, qrels)
        report["sqlite_bm25"].append(
            {"heading_weight": weight, "bm25": m["bm25"], "hybrid": m["hybrid"]}
        )
    await engine.dispose()
    report["best_sqlite"] = asdict(cfg)
    report["best_train_hybrid_ndcg@10"] = best[0]
    if not args.skip_pg:
        report["postgres_keyword"] = await tune_pg(
            args, docs, chunk_cache, cfg, count, queries, qvecs, qrels
        )
    return report


async def tune_pg(
    args: argparse.Namespace,
    docs: Sequence[CorpusDoc],
    chunk_cache: CachedEmbedder,
    cfg: Config,
    count: MiniLMOnnxEmbedder,
    queries: dict[str, str],
    qvecs: dict[str, NDArray[np.float32]],
    qrels: dict[str, dict[str, int]],
) -> list[dict[str, Any]]:
    engine = await pg_engine(args.pg_url, "botgpt_bench_tune")
    async with engine.connect() as conn:
        await ingest(PostgresChunkIndex(conn), docs, chunk_cache, cfg, count)
        await conn.commit()
    rows: list[dict[str, Any]] = []
    _, vector = await result_lists(
        engine, "postgresql", cfg, {q: queries[q] for q in queries}, qvecs
    )
    for function, norm, weights in itertools.product(
        ("idf_ts_rank", "ts_rank", "ts_rank_cd"),
        (0, 1, 2, 32),
        ((0.1, 0.2, 0.4, 1.0), (0.1, 0.2, 1.0, 1.0)),
    ):
        trial = Config(
            **{
                **asdict(cfg),
                "pg_rank_function": function,
                "pg_rank_normalization": norm,
                "pg_weights": weights,
            }
        )
        keyword, _ = await result_lists(
            engine, "postgresql", trial, queries, qvecs, with_vector=False
        )
        m = metrics(trial, keyword, vector, qrels)
        rows.append(
            {
                "rank_function": function,
                "normalization": norm,
                "weights": weights,
                "bm25": m["bm25"],
                "hybrid": m["hybrid"],
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
    await engine.dispose()
    rows.sort(key=lambda r: -r["hybrid"]["ndcg@10"])
    return rows


# --------------------------------------------------------------------------- main


async def evaluate(
    args: argparse.Namespace, data: BeirDataset, embedder: MiniLMOnnxEmbedder
) -> dict[str, Any]:
    cfg = CHOSEN
    count = embedder
    qrels = data.qrels["test"]
    queries = {q: data.queries[q] for q in qrels}
    qcache = CachedEmbedder(embedder, args.cache / "queries.npz")
    qvecs = dict(zip(queries, await qcache.embed(list(queries.values())), strict=True))
    qcache.save()
    chunk_cache = CachedEmbedder(embedder, args.cache / "chunks.npz")
    docs = list(data.corpus.values())
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()},
        "dataset": {"docs": len(docs), "test_queries": len(queries)},
        "embedder": {
            "name": embedder.name,
            "max_tokens": embedder.max_tokens,
            "threads": embedder.threads,
        },
        "params": {**asdict(cfg), "chosen_on": "SciFact train queries (bench/scifact.py --tune)"},
    }
    backends = ["sqlite"] + ([] if args.skip_pg else ["postgresql"])
    for backend in backends:
        if backend == "sqlite":
            engine = await sqlite_engine(args.cache / "bench.db")
        else:
            engine = await pg_engine(args.pg_url, "botgpt_bench")
        # Throughput is measured cold (real ONNX inference) on SQLite unless told otherwise.
        cold = backend == "sqlite" and not args.cached_throughput
        source: Embedder = _TeeEmbedder(embedder, chunk_cache) if cold else chunk_cache
        async with engine.connect() as conn:
            stats = await ingest(make_index(conn, backend, cfg), docs, source, cfg, count)
            await conn.commit()
        chunk_cache.save()
        stats["embeddings"] = "computed (cold)" if cold else "from cache (index-only timing)"
        keyword, vector = await result_lists(engine, backend, cfg, queries, qvecs)
        test = metrics(cfg, keyword, vector, qrels, with_convex=True)
        entry: dict[str, Any] = {"ingest": stats, "test": test}
        entry["latency_k10"] = await latencies(
            engine, backend, cfg, embedder, list(queries.values())
        )
        report[backend] = entry
        print(json.dumps({backend: entry}), file=sys.stderr)
        await engine.dispose()
    if not args.skip_scale:
        sample = list(queries.values())[: args.scale_queries]
        report["sqlite_100k"] = await scale_test(
            args.cache / "scale.db", docs, embedder, chunk_cache, cfg, count, sample
        )
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    return report


class _TeeEmbedder(Embedder):
    """Always runs the real embedder (for timing) and stores results in the cache."""

    def __init__(self, inner: Embedder, cache: CachedEmbedder) -> None:
        self.inner, self.cache = inner, cache
        self.name, self.dimension = inner.name, inner.dimension

    async def embed(self, texts: Sequence[str]) -> Vectors:
        vectors = await self.inner.embed(texts)
        for t, v in zip(texts, vectors, strict=True):
            self.cache.cache[hashlib.sha1(t.encode()).hexdigest()] = v
        self.cache.dirty = True
        return vectors


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/botgpt-bench"))
    parser.add_argument("--pg-url", default=os.environ.get("BOTGPT_TEST_PG_URL", DEFAULT_PG))
    parser.add_argument("--tune", action="store_true", help="grid search on train queries")
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--cached-throughput", action="store_true")
    parser.add_argument("--scale-queries", type=int, default=100)
    parser.add_argument("--limit-docs", type=int, default=0, help="smoke test on fewer docs")
    parser.add_argument(
        "--chunk-grid",
        type=lambda s: [tuple(int(x) for x in part.split(":")) for part in s.split(",")],
        default=[(128, 32), (256, 32), (256, 0), (384, 32)],
        help="chunk_tokens:overlap pairs for --tune, e.g. 128:32,256:32",
    )
    return parser.parse_args()


async def main() -> None:
    args = parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    data = load_beir(args.data)
    if args.limit_docs:
        kept = dict(list(data.corpus.items())[: args.limit_docs])
        data = BeirDataset(kept, data.queries, data.qrels)
    embedder = MiniLMOnnxEmbedder()
    if args.tune:
        report = await tune(args, data, embedder)
        (args.cache / "tuning.json").write_text(json.dumps(report, indent=2))
    else:
        report = await evaluate(args, data, embedder)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
