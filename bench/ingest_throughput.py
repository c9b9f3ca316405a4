"""Ingestion throughput against the embedding model's own speed, and chat latency meanwhile.

Prints one JSON object, all measured in one run on SciFact's abstracts:

- ``model_alone``: every chunk text the pipeline would embed (produced first, untimed, by the
  real parse and chunk functions from the same Markdown bytes) through the ONNX model with the
  server's batch size and threads, sorted by length over the whole corpus: the model's best.
  Measured before and after the pipeline (the machine is shared; both are reported).
- ``pipeline``: a real ``botgpt serve`` on 127.0.0.1 (SQLite, or PostgreSQL with ``--pg``);
  every abstract is uploaded through the API as ``<id>.md`` (``# title`` + abstract) and the
  clock runs from the first upload until every document is ``ready``; docs/s, the ratio to the
  model alone (its mean), and the server's CPU seconds against the model's.
- ``chat``: a client sends chat turns (fake provider: the figure is our server's own latency)
  one after another with a pause between them, first with the server idle, then while the
  upload ingests; p50/p95/p99 of both.

    .venv/bin/python bench/ingest_throughput.py [--limit-docs 500] [--pg]
        [--server-env BOTGPT_INGEST_WORKERS=1] [--server-src /tmp/other/src]

``--server-src`` runs the server from another source tree (e.g. an older commit's ``src``
exported with ``git archive``) to compare before and after on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).parent))
from chat_turn import Conn, build, cpu_seconds, latency_ms, memory_mb, setup, start_server

from botgpt.config import Settings
from botgpt.documents.chunking import chunk_document, embedding_text
from botgpt.documents.parsing import parse_document
from botgpt.retrieval.embedders import MiniLMOnnxEmbedder, available_cores

CORPUS = "/work/shared/eval/scifact/corpus.jsonl"
PG_ADMIN = "postgresql://postgres@127.0.0.1:55432/postgres"
BOUNDARY = "botgptbenchboundary7f3a"


def load_corpus(path: str, limit: int | None) -> list[tuple[str, bytes]]:
    """(file name, Markdown bytes) of each abstract, as the pipeline receives them."""
    docs: list[tuple[str, bytes]] = []
    seen: set[bytes] = set()
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            data = f"# {row['title']}\n\n{row['text']}".encode()
            if data in seen:  # the server keeps one document per content: so do we
                continue
            seen.add(data)
            docs.append((f"{row['_id']}.md", data))
            if limit is not None and len(docs) >= limit:
                break
    return docs


def chunk_texts(docs: Sequence[tuple[str, bytes]], embedder: MiniLMOnnxEmbedder) -> list[str]:
    """The texts the pipeline embeds, from the real parse and chunk functions (default sizes)."""
    texts: list[str] = []
    for name, data in docs:
        chunks = chunk_document(
            parse_document(data, name),
            chunk_tokens=256,
            overlap_tokens=32,
            count_tokens=embedder.count_tokens,
            token_offsets=embedder.token_offsets,
        )
        texts += [embedding_text(c) for c in chunks]
    return texts


async def model_alone(texts: list[str], embedder: MiniLMOnnxEmbedder, docs: int) -> dict[str, Any]:
    """Embed every text in one call (sorted by length over the corpus): the model's speed.

    Through `embed`, so the model runs on its own threads at the server's priority.
    """
    await embedder.embed(texts[:16])  # load the session, warm up
    cpu, wall = time.process_time(), time.perf_counter()
    await embedder.embed(texts)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "seconds": round(wall, 2),
        "chunks_per_s": round(len(texts) / wall, 2),
        "docs_per_s": round(docs / wall, 2),
        "cpu_seconds": round(cpu, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def multipart(name: str, data: bytes, key: str) -> bytes:
    """A raw HTTP/1.1 upload request (the client must cost the machine little)."""
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: text/markdown\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    head = (
        f"POST /api/v1/documents HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def upload_all(
    port: int, key: str, docs: Sequence[tuple[str, bytes]], concurrency: int
) -> dict[str, Any]:
    """Upload every document; returns the ids and how long the uploads took."""
    requests = iter([multipart(name, data, key) for name, data in docs])
    ids: set[str] = set()
    errors: list[str] = []

    async def worker() -> None:
        conn = Conn(port)
        await conn.open()
        for raw in requests:
            status, body = await conn.request(raw)
            if status in (200, 201, 202):
                ids.add(json.loads(body)["id"])
            else:
                errors.append(body[:200].decode(errors="replace"))
        conn.writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"ids": ids, "seconds": time.perf_counter() - started, "errors": errors}


class Progress:
    """Counts finished documents straight from the database (no load on the server)."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self._pg: Any = None

    async def finished(self) -> tuple[int, int]:
        """(ready, failed) documents."""
        sql = (
            "SELECT count(*) FILTER (WHERE status = 'ready'), "
            "count(*) FILTER (WHERE status = 'failed') FROM documents"
        )
        if self.url.startswith("postgresql"):
            if self._pg is None:
                self._pg = await asyncpg.connect(self.url.replace("+asyncpg", ""))
            row = await self._pg.fetchrow(sql)
            return int(row[0]), int(row[1])
        path = self.url.split("///", 1)[1]

        def read() -> tuple[int, int]:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as conn:
                ready, failed = conn.execute(sql).fetchone()
                return int(ready or 0), int(failed or 0)

        return await asyncio.to_thread(read)

    async def close(self) -> None:
        """Close the PostgreSQL connection if one was opened."""
        if self._pg is not None:
            await self._pg.close()


async def chat_turns(
    port: int, key: str, conversations: list[str], stop: asyncio.Event, pause: float, limit: int
) -> list[float]:
    """Turns one after another (``pause`` between them) until ``stop`` or ``limit`` turns."""
    conn = Conn(port)
    await conn.open()
    requests = [
        build("POST", f"/api/v1/conversations/{c}/messages", {"content": "How are you?"}, key)
        for c in conversations
    ]
    latencies: list[float] = []
    while not stop.is_set() and len(latencies) < limit:
        started = time.perf_counter()
        status, body = await conn.request(requests[len(latencies) % len(requests)])
        latencies.append(time.perf_counter() - started)
        if status not in (200, 201):
            raise RuntimeError(f"chat turn failed: {status} {body[:200]!r}")
        await asyncio.sleep(pause)
    conn.writer.close()
    return latencies


async def pipeline(
    args: argparse.Namespace, docs: Sequence[tuple[str, bytes]], database_url: str
) -> dict[str, Any]:
    """Start the server, measure idle chat, then upload everything and wait for ``ready``."""
    env = dict(item.split("=", 1) for item in args.server_env)
    env.setdefault("BOTGPT_EMBEDDING_THREADS", str(args.threads))
    env.setdefault("BOTGPT_EMBEDDING_NICE", str(args.nice))
    env.setdefault("BOTGPT_LOG_LEVEL", "WARNING")
    env["BOTGPT_LLM_TITLES"] = "false"
    if args.server_src:
        env["PYTHONPATH"] = args.server_src
    proc, port, admin_key = start_server(database_url, env)
    progress = Progress(database_url)
    try:
        key, conversations = await setup(port, admin_key, 8)
        cpu0 = cpu_seconds(proc.pid)
        idle = await chat_turns(
            port, key, conversations, asyncio.Event(), args.chat_pause, args.idle_turns
        )
        chat_cpu = (cpu_seconds(proc.pid) - cpu0) / max(len(idle), 1)
        # Load the embedding model before the clock starts (one small document).
        warm = await upload_all(port, key, [("warm-up.md", b"# Warm up\n\nLoading.")], 1)
        while sum(await progress.finished()) < 1:  # noqa: ASYNC110 - another process writes
            await asyncio.sleep(0.1)
        stop = asyncio.Event()
        chat = asyncio.create_task(
            chat_turns(port, key, conversations, stop, args.chat_pause, 1_000_000)
        )
        cpu0 = cpu_seconds(proc.pid)
        started = time.perf_counter()
        uploads = await upload_all(port, key, docs, args.upload_concurrency)
        expected = len(uploads["ids"]) + len(warm["ids"])
        while True:
            ready, failed = await progress.finished()
            if ready + failed >= expected:
                break
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - started
        server_cpu = cpu_seconds(proc.pid) - cpu0
        stop.set()
        during = await chat
        return {
            "database": "postgresql" if database_url.startswith("postgresql") else "sqlite",
            "documents": len(uploads["ids"]),
            "ready": ready - 1,
            "failed": failed,
            "upload_errors": uploads["errors"][:3],
            "upload_seconds": round(uploads["seconds"], 2),
            "seconds": round(elapsed, 2),
            "docs_per_s": round(len(uploads["ids"]) / elapsed, 2),
            "server_cpu_seconds": round(server_cpu, 2),
            # The server's CPU minus what the chat turns sent meanwhile cost (measured idle).
            "server_cpu_seconds_ingest": round(server_cpu - chat_cpu * len(during), 2),
            "server_cpu_ms_per_chat_turn": round(chat_cpu * 1000, 2),
            "server_memory": memory_mb(proc.pid),
            "chat_idle": latency_ms(idle, "turns"),
            "chat_during_ingest": latency_ms(during, "turns"),
            "server_env": {k: v for k, v in env.items() if k != "PYTHONPATH"},
        }
    finally:
        await progress.close()
        proc.terminate()
        proc.wait(timeout=60)


async def pg_database() -> tuple[str, str]:
    """A fresh PostgreSQL database (pgvector) for the server; returns (url, name)."""
    name = f"botgpt_ingest_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:55432/{name}", name


async def drop_pg_database(name: str) -> None:
    """Drop the benchmark's database."""
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def pipeline_on_fresh_database(
    args: argparse.Namespace, docs: Sequence[tuple[str, bytes]]
) -> dict[str, Any]:
    """`pipeline` on a new SQLite file or PostgreSQL database (dropped afterwards)."""
    if not args.pg:
        folder = tempfile.mkdtemp(prefix="botgpt-ingest-bench-")
        return await pipeline(args, docs, f"sqlite+aiosqlite:///{folder}/bench.db")
    database_url, name = await pg_database()
    try:
        return await pipeline(args, docs, database_url)
    finally:
        await drop_pg_database(name)


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=CORPUS)
    parser.add_argument("--limit-docs", type=int, default=None)
    parser.add_argument("--pg", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--threads", type=int, default=available_cores())
    parser.add_argument(
        "--nice",
        type=int,
        default=Settings.model_fields["embedding_nice"].default,
        help="nice value of the model's threads, in the server and alone",
    )
    parser.add_argument("--upload-concurrency", type=int, default=4)
    parser.add_argument("--chat-pause", type=float, default=0.2, help="seconds between turns")
    parser.add_argument("--idle-turns", type=int, default=200)
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--server-src", default="", help="run the server from this src folder")
    parser.add_argument("--pipeline-only", action="store_true", help="diagnostics: no model run")
    return parser.parse_args()


async def main() -> None:
    """Run the benchmark and print JSON."""
    args = parse_args()
    docs = load_corpus(args.corpus, args.limit_docs)
    embedder = MiniLMOnnxEmbedder(threads=args.threads, nice=args.nice)
    texts = chunk_texts(docs, embedder)
    result: dict[str, Any] = {
        "documents": len(docs),
        "chunks": len(texts),
        "threads": args.threads,
        "model_batch_size": embedder.batch_size,
        "nice": args.nice,
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    if args.pipeline_only:
        result["pipeline"] = await pipeline_on_fresh_database(args, docs)
        print(json.dumps(result, indent=2))
        return
    before = await model_alone(texts, embedder, len(docs))
    run = await pipeline_on_fresh_database(args, docs)
    after = await model_alone(texts, embedder, len(docs))
    model_docs_per_s = (before["docs_per_s"] + after["docs_per_s"]) / 2
    model_cpu = (before["cpu_seconds"] + after["cpu_seconds"]) / 2
    result["model_alone"] = {"before": before, "after": after}
    result["pipeline"] = run
    result["ratio_to_model"] = round(run["docs_per_s"] / model_docs_per_s, 3)
    result["cpu_ratio_to_model"] = round(model_cpu / run["server_cpu_seconds"], 3)
    result["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
