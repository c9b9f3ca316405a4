"""SciFact through the Qdrant-backed chunk index against the database's own (SQLite).

Same parse -> chunk -> embed path, parameters and embedding cache as bench/scifact.py (its
`--cache`, default /tmp/botgpt-bench: a run of either script fills it for both). Indexes the
5,183 abstracts once into SQLite alone and once into SQLite + Qdrant (embedded, in memory),
then reports nDCG@10 / Recall@100 of keyword, vector and hybrid search on the 300 test
queries, and the p50/p95 of the vector search filtered to the corpus' owner. Prints JSON.

    .venv/bin/python bench/qdrant_scifact.py [--limit-docs 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scifact import (  # type: ignore[import-not-found]
    CHOSEN,
    DEFAULT_DATA,
    OWNER,
    CachedEmbedder,
    ingest,
    make_index,
    metrics,
    percentiles,
    sqlite_engine,
)

from botgpt.retrieval.embedders import MiniLMOnnxEmbedder
from botgpt.retrieval.eval import BeirDataset, load_beir
from botgpt.retrieval.qdrant_store import QdrantChunkIndex, QdrantVectors, connect_qdrant
from botgpt.retrieval.stores import ChunkIndex, ScoredChunk

DEPTH = 300  # chunk candidates per list, as bench/scifact.py


def bind(conn: Any, vectors: QdrantVectors | None) -> ChunkIndex:
    index = make_index(conn, "sqlite", CHOSEN)
    return index if vectors is None else QdrantChunkIndex(index, vectors)


async def run_store(
    path: Path,
    vectors: QdrantVectors | None,
    data: BeirDataset,
    chunk_cache: CachedEmbedder,
    count: MiniLMOnnxEmbedder,
    queries: dict[str, str],
    qvecs: dict[str, NDArray[np.float32]],
) -> dict[str, Any]:
    engine = await sqlite_engine(path)
    try:
        async with engine.connect() as conn:
            stats = await ingest(
                bind(conn, vectors), list(data.corpus.values()), chunk_cache, CHOSEN, count
            )
            await conn.commit()
        chunk_cache.save()
        keyword: dict[str, list[ScoredChunk]] = {}
        vector: dict[str, list[ScoredChunk]] = {}
        vector_ms: list[float] = []
        async with engine.connect() as conn:
            index = bind(conn, vectors)
            for qid, query in queries.items():
                keyword[qid] = await index.keyword_search(query, OWNER, None, DEPTH)
                vector[qid] = await index.vector_search(qvecs[qid], OWNER, None, DEPTH)
                t0 = time.perf_counter()
                await index.vector_search(qvecs[qid], OWNER, None, 10)
                vector_ms.append((time.perf_counter() - t0) * 1000)
                await conn.rollback()
        return {
            "chunks": stats["chunks"],
            "index_s": stats["index_s"],
            "test": metrics(CHOSEN, keyword, vector, data.qrels["test"]),
            "vector_k10_owner_filtered_ms": percentiles(vector_ms),
        }
    finally:
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/botgpt-bench"))
    parser.add_argument("--limit-docs", type=int, default=0)
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    data = load_beir(args.data)
    if args.limit_docs:
        data = BeirDataset(
            dict(list(data.corpus.items())[: args.limit_docs]), data.queries, data.qrels
        )
    embedder = MiniLMOnnxEmbedder()
    qrels = data.qrels["test"]
    queries = {q: data.queries[q] for q in qrels}
    qcache = CachedEmbedder(embedder, args.cache / "queries.npz")
    qvecs = dict(zip(queries, await qcache.embed(list(queries.values())), strict=True))
    qcache.save()
    chunk_cache = CachedEmbedder(embedder, args.cache / "chunks.npz")
    report: dict[str, Any] = {
        "docs": len(data.corpus),
        "queries": len(queries),
        "load_average_at_start": os.getloadavg(),
        "cpus": os.cpu_count(),
        "qdrant_mode": "embedded (in memory): exact search",
    }
    for name, vectors in (
        ("sqlite", None),
        ("sqlite+qdrant", connect_qdrant(":memory:", collection="scifact")),
    ):
        try:
            report[name] = await run_store(
                args.cache / f"qdrant-{name}.db",
                vectors,
                data,
                chunk_cache,
                embedder,
                queries,
                qvecs,
            )
        finally:
            if vectors is not None:
                await vectors.close()
    report["load_average_at_end"] = os.getloadavg()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
