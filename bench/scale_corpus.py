"""The scale benchmarks' corpus: SciFact's chunks repeated to any size across 100 owners.

The base is SciFact's 5,183 abstracts through the real upload path (Markdown -> parse -> chunk,
256/32 tokens) with their MiniLM vectors, computed once and cached (``base.json`` +
``base.npz`` under ``--cache``, default /var/cache/botgpt-bench). Copy ``c`` of the base
belongs to owner ``c % 100``; copy 0 keeps the real vectors, later copies add Gaussian noise
(sigma 0.02 per dimension, about 0.93 cosine to the original) and are re-normalised, so every
copy is distinct but near its original. Everything is derived deterministically from the copy
number: a store loader asks for batches, and ``exact_top_k`` computes the ground truth of the
vector search (cached per size, owner and k) by streaming over the same copies.

    .venv/bin/python bench/scale_corpus.py --chunks 1000000   # build the base, print figures
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from botgpt.documents.chunking import chunk_document, embedding_text
from botgpt.documents.parsing import parse_document
from botgpt.retrieval.embedders import Embedder, MiniLMOnnxEmbedder, Vectors
from botgpt.retrieval.eval import load_beir
from botgpt.retrieval.stores import ChunkRecord

DEFAULT_DATA = "/work/shared/eval/scifact"
DEFAULT_CACHE = Path(os.environ.get("BOTGPT_BENCH_CACHE", "/var/cache/botgpt-bench"))
OWNERS = 100
SIGMA = 0.02
CHUNK_TOKENS, OVERLAP_TOKENS = 256, 32
_NS = uuid.UUID("6b1f0c2e-3d55-4a8e-9a43-5c0de0b07a11")


@dataclass(frozen=True, slots=True)
class BaseChunk:
    """One chunk of the base corpus (SciFact document ``doc_id``)."""

    doc_id: str
    ordinal: int
    heading: str
    text: str
    char_start: int
    char_end: int
    token_count: int


@dataclass(frozen=True)
class BaseCorpus:
    """SciFact chunks with their vectors, and the test queries with theirs."""

    chunks: list[BaseChunk]
    vectors: NDArray[np.float32]  # (len(chunks), 384), L2-normalised
    query_ids: list[str]
    query_texts: list[str]
    query_vectors: NDArray[np.float32]  # (len(queries), 384)

    @property
    def size(self) -> int:
        """Number of base chunks (one copy)."""
        return len(self.chunks)


@dataclass(frozen=True)
class ScaledBatch:
    """One copy (or the last, partial copy) of the base, owned by ``owner_id``."""

    copy: int
    owner_id: str
    count: int  # chunks of this copy included (== base size except for the last copy)
    vectors: NDArray[np.float32]  # (count, 384)

    def chunk_id(self, i: int) -> str:
        """Id of the copy's i-th chunk."""
        return chunk_id(self.copy, i)

    def document_id(self, chunk: BaseChunk) -> str:
        """Id of the copy's document holding ``chunk``."""
        return str(uuid.uuid5(_NS, f"doc/{self.copy}/{chunk.doc_id}"))


class PrecomputedEmbedder(Embedder):
    """Returns the corpus's stored query vectors (the database's cost without the model's).

    A text it has no vector for gets a fixed direction, so an odd query still searches.
    """

    name = "minilm-precomputed"
    dimension = 384

    def __init__(self, texts: Sequence[str], vectors: NDArray[np.float32]) -> None:
        self.vectors = {t: v for t, v in zip(texts, vectors, strict=True)}

    async def embed(self, texts: Sequence[str]) -> Vectors:
        fallback = np.full(self.dimension, 0.05, np.float32)
        return np.stack([self.vectors.get(t, fallback) for t in texts]).astype(np.float32)


def owner_id(index: int) -> str:
    """The id of owner ``index`` (0..OWNERS-1)."""
    return str(uuid.UUID(int=0xB0B0_0000_0000 + index))


def chunk_id(copy: int, i: int) -> str:
    """Id of chunk ``i`` of copy ``copy`` (stable across runs)."""
    return str(uuid.uuid5(_NS, f"chunk/{copy}/{i}"))


def global_index_to_id(index: int, base_size: int) -> str:
    """Chunk id of a global index (copy * base_size + i), as ``exact_top_k`` returns them."""
    return chunk_id(index // base_size, index % base_size)


# --------------------------------------------------------------------------- the base


def load_base(data_dir: str = DEFAULT_DATA, cache: Path = DEFAULT_CACHE) -> BaseCorpus:
    """The base corpus, from the cache or built (parse, chunk, embed: a few minutes) and cached."""
    meta_path, array_path = cache / "base.json", cache / "base.npz"
    if meta_path.exists() and array_path.exists():
        meta = json.loads(meta_path.read_text())
        with np.load(array_path) as arrays:
            vectors, query_vectors = arrays["vectors"], arrays["query_vectors"]
        return BaseCorpus(
            [BaseChunk(**c) for c in meta["chunks"]],
            vectors.astype(np.float32),
            meta["query_ids"],
            meta["query_texts"],
            query_vectors.astype(np.float32),
        )
    data = load_beir(data_dir)
    embedder = MiniLMOnnxEmbedder()
    chunks: list[BaseChunk] = []
    texts: list[str] = []
    for doc in data.corpus.values():
        parsed = parse_document(f"# {doc.title}\n\n{doc.text}".encode(), f"{doc.id}.md")
        for c in chunk_document(
            parsed,
            chunk_tokens=CHUNK_TOKENS,
            overlap_tokens=OVERLAP_TOKENS,
            count_tokens=embedder.count_tokens,
            token_offsets=embedder.token_offsets,
        ):
            chunks.append(
                BaseChunk(
                    doc.id, c.ordinal, c.heading, c.text, c.char_start, c.char_end, c.token_count
                )
            )
            texts.append(embedding_text(c))
    started = time.perf_counter()
    vectors = embedder.embed_sync(texts)
    print(f"embedded {len(texts)} chunks in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    qrels = data.qrels["test"]
    query_ids = [q for q in qrels if q in data.queries]
    query_texts = [data.queries[q] for q in query_ids]
    query_vectors = embedder.embed_sync(query_texts)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = array_path.with_suffix(".tmp.npz")
    np.savez(tmp, vectors=vectors, query_vectors=query_vectors)
    tmp.replace(array_path)
    meta_path.write_text(
        json.dumps(
            {
                "chunks": [_as_dict(c) for c in chunks],
                "query_ids": query_ids,
                "query_texts": query_texts,
            }
        )
    )
    return load_base(data_dir, cache)


def _as_dict(chunk: BaseChunk) -> dict[str, object]:
    return {name: getattr(chunk, name) for name in BaseChunk.__slots__}


# --------------------------------------------------------------------------- scaled copies


def copy_vectors(base: BaseCorpus, copy: int, count: int | None = None) -> NDArray[np.float32]:
    """The vectors of copy ``copy``: the originals for copy 0, perturbed and re-normalised after."""
    vectors = base.vectors[: count if count is not None else base.size]
    if copy == 0:
        return np.ascontiguousarray(vectors, dtype=np.float32)
    rng = np.random.default_rng(copy)
    noisy = vectors + rng.normal(0.0, SIGMA, size=vectors.shape).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    return np.ascontiguousarray(noisy, dtype=np.float32)


def batches(base: BaseCorpus, total: int, owners: int = OWNERS) -> Iterator[ScaledBatch]:
    """Copies of the base until ``total`` chunks, owner = copy % owners."""
    copies = math.ceil(total / base.size)
    for copy in range(copies):
        count = min(base.size, total - copy * base.size)
        yield ScaledBatch(copy, owner_id(copy % owners), count, copy_vectors(base, copy, count))


def records(base: BaseCorpus, batch: ScaledBatch, embedding: bool = True) -> list[ChunkRecord]:
    """The batch as ``ChunkRecord``s for ``ChunkIndex.add`` (a slow path; prefer bulk loads)."""
    out = []
    for i in range(batch.count):
        c = base.chunks[i]
        out.append(
            ChunkRecord(
                id=batch.chunk_id(i),
                document_id=batch.document_id(c),
                owner_id=batch.owner_id,
                ordinal=c.ordinal,
                text=c.text,
                embedding=batch.vectors[i] if embedding else np.zeros(384, np.float32),
                char_start=c.char_start,
                char_end=c.char_end,
                token_count=c.token_count,
                heading=c.heading,
            )
        )
    return out


def owner_chunk_count(base: BaseCorpus, total: int, owner: int, owners: int = OWNERS) -> int:
    """How many of the ``total`` chunks belong to owner ``owner``."""
    return sum(count for copy, count in _shapes(base, total, owners) if copy % owners == owner)


def _shapes(base: BaseCorpus, total: int, owners: int) -> list[tuple[int, int]]:
    copies = math.ceil(total / base.size)
    return [(c, min(base.size, total - c * base.size)) for c in range(copies)]


# --------------------------------------------------------------------------- ground truth


def exact_top_k(
    base: BaseCorpus,
    total: int,
    k: int = 10,
    owner: int | None = None,
    cache: Path = DEFAULT_CACHE,
    owners: int = OWNERS,
) -> NDArray[np.int64]:
    """Exact cosine top-k of every test query: global indices (copy * base.size + i), best first.

    ``owner`` restricts to that owner's copies. Cached in ``truth_<total>_<owner|all>_<k>.npy``.
    """
    path = cache / f"truth_{total}_{'all' if owner is None else owner}_{k}.npy"
    if path.exists():
        loaded: NDArray[np.int64] = np.load(path)
        return loaded
    q = base.query_vectors
    best_scores = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(q), 0), dtype=np.int64)
    for copy, count in _shapes(base, total, owners):
        if owner is not None and copy % owners != owner:
            continue
        scores = q @ copy_vectors(base, copy, count).T
        ids = np.arange(count, dtype=np.int64) + copy * base.size
        all_scores = np.concatenate([best_scores, scores], axis=1)
        all_ids = np.concatenate([best_ids, np.broadcast_to(ids, scores.shape)], axis=1)
        keep = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(all_scores, keep, axis=1)
        best_ids = np.take_along_axis(all_ids, keep, axis=1)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, best_ids)
    return best_ids


def recall_at_k(found: Sequence[Sequence[str]], truth: NDArray[np.int64], base_size: int) -> float:
    """Mean share of the exact top-k ids found, over queries (``found[i]`` for query i)."""
    shares = []
    for ids, exact in zip(found, truth, strict=True):
        expected = {global_index_to_id(int(g), base_size) for g in exact}
        shares.append(len(expected & set(ids)) / max(len(expected), 1))
    return round(float(np.mean(shares)), 4) if shares else 0.0


# --------------------------------------------------------------------------- reporting


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50/p95/max of latencies in milliseconds (nearest rank)."""
    ordered = sorted(samples_ms)
    if not ordered:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "max_ms": 0.0, "n": 0}
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)], 2),
        "max_ms": round(ordered[-1], 2),
        "n": len(ordered),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def disk_mb(path: Path) -> float:
    """Size of a file or directory tree in MB."""
    if path.is_file():
        return round(path.stat().st_size / 2**20, 1)
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--chunks", type=int, default=1_000_000)
    args = parser.parse_args()
    started = time.perf_counter()
    base = load_base(args.data, args.cache)
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    truth_all = exact_top_k(base, args.chunks, cache=args.cache)
    truth_one = exact_top_k(base, args.chunks, owner=0, cache=args.cache)
    truth_s = time.perf_counter() - started
    report = {
        "base_chunks": base.size,
        "base_documents": len({c.doc_id for c in base.chunks}),
        "queries": len(base.query_ids),
        "chunks": args.chunks,
        "copies": math.ceil(args.chunks / base.size),
        "owner0_chunks": owner_chunk_count(base, args.chunks, 0),
        "load_or_build_s": round(loaded, 1),
        "ground_truth_s": round(truth_s, 1),
        "truth_shapes": [list(truth_all.shape), list(truth_one.shape)],
        "peak_rss_mb": peak_rss_mb(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
