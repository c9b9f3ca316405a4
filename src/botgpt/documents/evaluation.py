"""Retrieval evaluation: score the real ingestion and search path on a BEIR dataset.

`evaluate_retrieval` (run by ``botgpt eval retrieval``) migrates an empty
throwaway database, indexes every corpus entry of a BEIR dataset through the
same parse, chunk, embed and index steps as document ingestion (with the
embedder built by `botgpt.documents.embedding.build_embedder`), runs the split's
queries through the hybrid searcher and returns an `EvalReport` with nDCG@10,
Recall@100 and timings. `EVAL_OWNER_EMAIL` names the user that owns the
indexed documents and `EVAL_CHUNK_DEPTH` how many chunks are fetched per query.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, text

from botgpt.config import Settings
from botgpt.documents.chunking import chunk_document, chunk_record, embedding_text
from botgpt.documents.embedding import build_embedder
from botgpt.documents.models import READY, Document
from botgpt.documents.parsing import parse_document
from botgpt.ids import new_id, utcnow
from botgpt.retrieval.search import SearchMode

__all__ = ["EVAL_CHUNK_DEPTH", "EVAL_OWNER_EMAIL", "EvalReport", "evaluate_retrieval"]

_documents = cast(Table, Document.__table__)

EVAL_OWNER_EMAIL = "retrieval-eval@botgpt.local"
EVAL_CHUNK_DEPTH = 300  # chunks fetched per query: enough distinct documents for Recall@100


@dataclass(frozen=True, slots=True)
class EvalReport:
    """Retrieval quality of the pipeline on a BEIR dataset split."""

    dataset: str
    split: str
    mode: str
    embedding_model: str
    documents: int
    chunks: int
    queries: int
    ndcg_at_10: float
    recall_at_100: float
    index_seconds: float
    search_ms_median: float


async def evaluate_retrieval(
    settings: Settings,
    dataset_dir: str,
    *,
    split: str = "test",
    mode: SearchMode = "hybrid",
    database_url: str,
    progress: Callable[[str, int, int], None] | None = None,
) -> EvalReport:
    """Index a BEIR corpus with the real parse/chunk/embed/index path, then search its queries.

    Every corpus entry becomes a Markdown document (title as heading); ``database_url`` must
    be an empty throwaway database (it is migrated here). Prints nothing: ``progress`` gets
    (stage, done, total).
    """
    from botgpt import migrate
    from botgpt.db import make_engine
    from botgpt.documents.service import build_chunk_indexes
    from botgpt.retrieval.eval import load_beir, ndcg_at_k, recall_at_k
    from botgpt.retrieval.search import HybridSearcher, SearchParams

    data = load_beir(dataset_dir)
    if split not in data.qrels:
        raise ValueError(f"split {split!r} not found; available: {sorted(data.qrels)}")
    qrels = data.qrels[split]
    engine = make_engine(database_url)
    embedder = build_embedder(settings)
    # The configured vector store, in a collection of its own (a real server's stays untouched).
    # (an embedded Qdrant folder belongs to the server: the evaluation uses one in memory).
    own: dict[str, object] = {"qdrant_collection": f"botgpt_eval_{new_id().replace('-', '')}"}
    if settings.qdrant_path is not None:
        own.update(qdrant_path=None, qdrant_url=":memory:")
    indexes = build_chunk_indexes(settings.model_copy(update=own))
    try:
        await migrate.upgrade(engine)
        owner = new_id()
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO users (id, email, is_admin, is_active, created_at) "
                    "VALUES (:id, :email, false, true, :now)"
                ),
                {"id": owner, "email": EVAL_OWNER_EMAIL, "now": utcnow()},
            )
        count = await embedder.token_counter()
        corpus = list(data.corpus.values())
        by_document: dict[str, str] = {}
        chunks_total = 0
        started = time.perf_counter()
        batch_docs = 64
        for offset in range(0, len(corpus), batch_docs):
            batch = corpus[offset : offset + batch_docs]
            rows, records, texts = [], [], []
            for entry in batch:
                document_id = new_id()
                by_document[document_id] = entry.id
                markdown = f"# {entry.title}\n\n{entry.text}".encode()
                parsed = parse_document(markdown, f"{entry.id}.md")
                chunks = chunk_document(
                    parsed,
                    chunk_tokens=settings.chunk_tokens,
                    overlap_tokens=settings.chunk_overlap,
                    count_tokens=count,
                )
                rows.append(
                    {
                        "id": document_id,
                        "owner_id": owner,
                        "filename": f"{entry.id}.md",
                        "content_type": "text/markdown",
                        "detected_type": parsed.detected_type,
                        "size_bytes": len(markdown),
                        "sha256": document_id,
                        "storage_key": f"eval/{document_id}",
                        "status": READY,
                        "progress": 1.0,
                        "pages": len(parsed.pages),
                        "chunk_count": len(chunks),
                        "embedding_model": embedder.name,
                        "attempts": 0,
                        "created_at": utcnow(),
                        "updated_at": utcnow(),
                    }
                )
                for c in chunks:
                    records.append((document_id, c))
                    texts.append(embedding_text(c))
            vectors = await embedder.embed(texts)
            async with engine.begin() as conn:
                await conn.execute(_documents.insert(), rows)
                await indexes.bind(conn, dimension=embedder.dimension).add(
                    [
                        chunk_record(
                            c,
                            chunk_id=new_id(),
                            document_id=document_id,
                            owner_id=owner,
                            embedding=vector,
                        )
                        for (document_id, c), vector in zip(records, vectors, strict=True)
                    ],
                    embedding_model=embedder.name,
                )
            chunks_total += len(records)
            if progress is not None:
                progress("index", min(offset + batch_docs, len(corpus)), len(corpus))
        index_seconds = time.perf_counter() - started
        params = SearchParams(
            mode=mode,
            rrf_k=settings.rrf_k,
            keyword_weight=settings.hybrid_keyword_weight,
            vector_weight=settings.hybrid_vector_weight,
            candidates=EVAL_CHUNK_DEPTH,
        )
        queries = {qid: q for qid, q in data.queries.items() if qid in qrels}
        run: dict[str, list[str]] = {}
        timings: list[float] = []
        for done, (qid, query) in enumerate(queries.items(), start=1):
            t0 = time.perf_counter()
            async with engine.connect() as conn:
                searcher = HybridSearcher(
                    indexes.bind(conn, dimension=embedder.dimension), embedder, params
                )
                hits = await searcher.search(query, owner, None, EVAL_CHUNK_DEPTH)
            timings.append((time.perf_counter() - t0) * 1000)
            run[qid] = [by_document[h.document_id] for h in hits]
            if progress is not None:
                progress("search", done, len(queries))
        timings.sort()
        return EvalReport(
            dataset=dataset_dir,
            split=split,
            mode=mode,
            embedding_model=embedder.name,
            documents=len(corpus),
            chunks=chunks_total,
            queries=len(queries),
            ndcg_at_10=round(ndcg_at_k(run, qrels, 10), 4),
            recall_at_100=round(recall_at_k(run, qrels, 100), 4),
            index_seconds=round(index_seconds, 2),
            search_ms_median=round(timings[len(timings) // 2], 2) if timings else 0.0,
        )
    finally:
        await indexes.drop()
        await indexes.close()
        await embedder.aclose()
        await engine.dispose()
