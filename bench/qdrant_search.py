"""Search latency of the Qdrant-backed chunk index against the database's own, on one corpus.

Builds N synthetic chunks (words drawn Zipf-like from a fixed vocabulary; unit vectors drawn
around 50 topic centres) spread over some owners, indexes them once per store, then times
keyword, vector and hybrid (keyword + vector + RRF, the query already embedded) searches,
filtered to one owner and across all, and vector recall@10 against exact search in numpy.
Prints one JSON object.

    .venv/bin/python bench/qdrant_search.py                      # 10k chunks, SQLite
    .venv/bin/python bench/qdrant_search.py --chunks 100000 --pg postgresql+asyncpg://...

Qdrant runs in qdrant-client's embedded mode (exact search in numpy, payload filters
evaluated in Python, no payload indexes): a lower bound on what a server does with its
HNSW and payload indexes, not a measure of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from botgpt.db import make_engine
from botgpt.retrieval.hybrid import reciprocal_rank_fusion
from botgpt.retrieval.indexes import ChunkIndexes
from botgpt.retrieval.qdrant_store import QdrantVectors, connect_qdrant
from botgpt.retrieval.stores import ChunkRecord, ddl_statements

DIM = 384


def corpus(
    n: int, owners: int, seed: int
) -> tuple[list[ChunkRecord], NDArray[np.float32], list[str]]:
    """Chunk records, their vectors, and the owner ids."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(5000)]
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    centres = rng.standard_normal((50, DIM)).astype(np.float32)
    topic = rng.integers(0, 50, n)
    vectors = centres[topic] + 0.8 * rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    owner_ids = [str(uuid.UUID(int=i + 1)) for i in range(owners)]
    records = []
    for i in range(n):
        words = rng.choice(len(vocab), 40, p=weights)
        owner = owner_ids[i % owners]
        records.append(
            ChunkRecord(
                id=str(uuid.uuid4()),
                document_id=str(uuid.UUID(int=(i // 20) + 10_000_000)),
                owner_id=owner,
                ordinal=i % 20,
                text=" ".join(vocab[w] for w in words),
                embedding=vectors[i],
                char_start=0,
                char_end=300,
            )
        )
    return records, vectors, owner_ids


async def build(engine: AsyncEngine, indexes: ChunkIndexes, records: list[ChunkRecord]) -> float:
    """Index every record in transactions of 500; returns seconds."""
    async with engine.begin() as conn:
        for statement in ddl_statements(engine.dialect.name, DIM):
            await conn.execute(text(statement))
        await conn.execute(text("DELETE FROM chunks"))
    started = time.perf_counter()
    for offset in range(0, len(records), 500):
        async with engine.begin() as conn:
            await indexes.bind(conn, dimension=DIM).add(
                records[offset : offset + 500], embedding_model="bench"
            )
    return time.perf_counter() - started


async def search_once(
    engine: AsyncEngine,
    indexes: ChunkIndexes,
    mode: str,
    query: tuple[str, NDArray[np.float32]],
    owner: str | None,
) -> list[str]:
    """One search as the app runs it (own connection); returns the chunk ids found."""
    words, vector = query
    async with engine.connect() as conn:
        index = indexes.bind(conn, dimension=DIM)
        keyword = await index.keyword_search(words, owner, None, 50) if mode != "vector" else []
        nearest = await index.vector_search(vector, owner, None, 50) if mode != "keyword" else []
    if mode == "hybrid":
        return [h.chunk_id for h in reciprocal_rank_fusion(keyword, nearest, k=1.0)]
    return [h.chunk_id for h in (keyword or nearest)]


async def measure(
    engine: AsyncEngine,
    indexes: ChunkIndexes,
    records: list[ChunkRecord],
    vectors: NDArray[np.float32],
    owners: list[str],
    queries: int,
    k: int,
) -> dict[str, Any]:
    """Build the index, then time every mode and scope; recall is computed untimed."""
    build_seconds = await build(engine, indexes, records)
    rng = np.random.default_rng(1)
    picks = rng.integers(0, len(records), queries)
    qvecs = vectors[picks] + 0.3 * rng.standard_normal((queries, DIM)).astype(np.float32)
    asked = [(" ".join(records[int(i)].text.split()[:5]), qvecs[n]) for n, i in enumerate(picks)]
    owner_of = np.array([owners.index(r.owner_id) for r in records])
    out: dict[str, Any] = {"build_seconds": round(build_seconds, 2)}
    for scope in ("one_owner", "all_owners"):
        scoped = [owners[n % len(owners)] if scope == "one_owner" else None for n in range(queries)]
        for mode in ("keyword", "vector", "hybrid"):
            samples, found = [], []
            for n in range(queries):
                t0 = time.perf_counter()
                found.append(await search_once(engine, indexes, mode, asked[n], scoped[n]))
                samples.append((time.perf_counter() - t0) * 1000)
            samples.sort()
            out[f"{mode}_{scope}"] = {
                "p50_ms": round(statistics.median(samples), 2),
                "p95_ms": round(samples[int(0.95 * (len(samples) - 1))], 2),
            }
            if mode == "vector":
                recalls = []
                for n, ids in enumerate(found):
                    pool = np.arange(len(records))
                    if scoped[n] is not None:
                        pool = pool[owner_of == owners.index(str(scoped[n]))]
                    exact = pool[np.argsort(-(vectors[pool] @ qvecs[n]))[:k]]
                    want = {records[int(j)].id for j in exact}
                    recalls.append(len(want & set(ids[:k])) / k)
                out[f"vector_recall_at_{k}_{scope}"] = round(float(np.mean(recalls)), 4)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--owners", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--pg", default="", help="also measure PostgreSQL (an empty database)")
    args = parser.parse_args()
    records, vectors, owners = corpus(args.chunks, args.owners, seed=0)
    result: dict[str, Any] = {
        "chunks": args.chunks,
        "owners": args.owners,
        "queries": args.queries,
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "qdrant_mode": "embedded (in memory)",
    }
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite+aiosqlite:///{tmp}/bench.db"}
        if args.pg:
            urls["postgres"] = args.pg
        for backend, url in urls.items():
            for store in ("database", "qdrant"):
                vectors_store: QdrantVectors | None = None
                if store == "qdrant":
                    vectors_store = connect_qdrant(":memory:", collection="bench")
                engine = make_engine(url)
                indexes = ChunkIndexes(vectors_store)
                try:
                    result[f"{backend}+{store}"] = await measure(
                        engine, indexes, records, vectors, owners, args.queries, args.k
                    )
                finally:
                    await indexes.close()
                    await engine.dispose()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
