"""SciFact through the Qdrant-backed chunk index against the database's own (SQLite).

Uses bench/scale_corpus.py's cached base (SciFact's abstracts through the real upload path,
256/32-token chunks, MiniLM vectors, the test queries' vectors): copy 0, the real vectors,
owned by one owner, is indexed once into SQLite alone and once into SQLite + Qdrant
(embedded, in memory). Reports nDCG@10 / Recall@100 of keyword, vector and hybrid search
(bench/scifact.py's chosen fusion) on the test queries, vector recall@10 against exact
search, and p50/p95 of the owner-filtered vector search (k=10). Prints JSON.

    .venv/bin/python bench/qdrant_scifact.py
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale_corpus  # type: ignore[import-not-found]
from scifact import CHOSEN, make_index, metrics, sqlite_engine  # type: ignore[import-not-found]

from botgpt.retrieval.eval import load_beir
from botgpt.retrieval.qdrant_store import QdrantChunkIndex, QdrantVectors, connect_qdrant
from botgpt.retrieval.stores import ChunkIndex, ScoredChunk

DEPTH = 300  # chunk candidates per list, as bench/scifact.py


def bind(conn: Any, vectors: QdrantVectors | None) -> ChunkIndex:
    index = make_index(conn, "sqlite", CHOSEN)
    return index if vectors is None else QdrantChunkIndex(index, vectors)


async def run_store(path: Path, vectors: QdrantVectors | None, base: Any) -> dict[str, Any]:
    batch = next(scale_corpus.batches(base, base.size))
    records = scale_corpus.records(base, batch)
    scifact_id = {batch.document_id(c): c.doc_id for c in base.chunks}
    qrels = load_beir(scale_corpus.DEFAULT_DATA).qrels["test"]
    engine = await sqlite_engine(path)
    try:
        started = time.perf_counter()
        for offset in range(0, len(records), 500):
            async with engine.begin() as conn:
                await bind(conn, vectors).add(records[offset : offset + 500], embedding_model="m")
        index_s = time.perf_counter() - started
        keyword: dict[str, list[ScoredChunk]] = {}
        vector: dict[str, list[ScoredChunk]] = {}
        found_k10: list[list[str]] = []
        samples: list[float] = []
        async with engine.connect() as conn:
            index = bind(conn, vectors)
            for n, qid in enumerate(base.query_ids):
                keyword[qid] = await index.keyword_search(
                    base.query_texts[n], batch.owner_id, None, DEPTH
                )
                vector[qid] = await index.vector_search(
                    base.query_vectors[n], batch.owner_id, None, DEPTH
                )
                t0 = time.perf_counter()
                top = await index.vector_search(base.query_vectors[n], batch.owner_id, None, 10)
                samples.append((time.perf_counter() - t0) * 1000)
                found_k10.append([h.chunk_id for h in top])
                await conn.rollback()

        def as_scifact(hits: list[ScoredChunk]) -> list[ScoredChunk]:
            return [dataclasses.replace(h, document_id=scifact_id[h.document_id]) for h in hits]

        truth = scale_corpus.exact_top_k(base, base.size, 10, owner=0)
        return {
            "chunks": len(records),
            "index_s": round(index_s, 2),
            "test": metrics(
                CHOSEN,
                {q: as_scifact(v) for q, v in keyword.items()},
                {q: as_scifact(v) for q, v in vector.items()},
                qrels,
            ),
            "vector_recall_at_10": round(scale_corpus.recall_at_k(found_k10, truth, base.size), 4),
            "vector_k10_owner_filtered_ms": scale_corpus.percentiles(samples),
        }
    finally:
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=scale_corpus.DEFAULT_CACHE)
    args = parser.parse_args()
    base = scale_corpus.load_base(cache=args.cache)
    report: dict[str, Any] = {
        "chunks": base.size,
        "queries": len(base.query_ids),
        "load_average_at_start": os.getloadavg(),
        "cpus": os.cpu_count(),
        "qdrant_mode": "embedded (in memory): exact search, payload filter evaluated in Python",
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, vectors in (
            ("sqlite", None),
            ("sqlite+qdrant", connect_qdrant(":memory:", collection="scifact")),
        ):
            try:
                report[name] = await run_store(Path(tmp) / f"{name}.db", vectors, base)
            finally:
                if vectors is not None:
                    await vectors.close()
    report["load_average_at_end"] = os.getloadavg()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
