"""What hostile inputs cost the server: a huge JSON body and a DOCX bomb; prints JSON.

1. A real `botgpt serve` (SQLite, fake model) receives a JSON body of --body-mb MB (default
   400), once with Content-Length and once chunked. Reports the status, how much of the body
   the client got to send, and the server's peak memory. With --unlimited the body limit is
   raised to 1 GB, which shows what the limit saves (the behaviour before it existed).
2. A DOCX of a million empty paragraphs (~190 KB zipped, 52 MB unzipped) is parsed with the
   default limits (refused before parsing) and with the archive/paragraph limits lifted (the
   child process parses it within its time budget and memory cap).

    python bench/hostile_inputs.py [--body-mb 400] [--unlimited]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chat_turn import memory_mb, start_server
from tests.documents.hostile import docx_bomb

from botgpt.documents.limits import ParseLimits
from botgpt.documents.parsing import parse_document
from botgpt.documents.sandbox import ParseBudget, parse_bounded

MB = 1024 * 1024
CHUNK = MB


async def send_body(port: int, key: str, size: int, chunked: bool) -> dict[str, Any]:
    """POST a JSON conversation padded to `size` bytes; stops writing once answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /api/v1/conversations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
    )
    prefix = b'{"first_message": "hi", "padding": "'
    suffix = b'"}'
    filler = size - len(prefix) - len(suffix)
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {size}\r\n\r\n"
    writer.write(head.encode())
    started = time.perf_counter()
    answer = asyncio.ensure_future(reader.readuntil(b"\r\n\r\n"))
    sent = 0

    async def write(piece: bytes) -> None:
        nonlocal sent
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        sent += len(piece)
        await writer.drain()

    try:
        await write(prefix)
        while filler > 0 and not answer.done():
            n = min(CHUNK, filler)
            await write(b"a" * n)
            filler -= n
        if not answer.done():
            await write(suffix)
            if chunked:
                writer.write(b"0\r\n\r\n")
        status_line = (await asyncio.wait_for(answer, 120)).split(b"\r\n", 1)[0]
    except (ConnectionError, asyncio.IncompleteReadError):
        status_line = (await asyncio.wait_for(answer, 5)).split(b"\r\n", 1)[0]
    writer.close()
    return {
        "transfer": "chunked" if chunked else "content-length",
        "status": int(status_line.split()[1]),
        "sent_mb": round(sent / MB, 1),
        "seconds": round(time.perf_counter() - started, 2),
    }


async def body_limit(args: argparse.Namespace) -> dict[str, Any]:
    env = {"BOTGPT_MAX_BODY_MB": "1024"} if args.unlimited else {}
    with __import__("tempfile").TemporaryDirectory() as tmp:
        proc, port, key = start_server(f"sqlite+aiosqlite:///{tmp}/bench.db", env)
        try:
            idle = memory_mb(proc.pid)
            runs = []
            for chunked in (False, True):
                run = await send_body(port, key, args.body_mb * MB, chunked)
                run["server_peak_rss_mb"] = memory_mb(proc.pid)["peak_rss_mb"]
                runs.append(run)
        finally:
            proc.terminate()
            proc.wait(30)
    return {
        "body_mb": args.body_mb,
        "limit_mb": 1024 if args.unlimited else 1,
        "server_idle_rss_mb": idle["rss_mb"],
        "runs": runs,
    }


async def docx(args: argparse.Namespace) -> dict[str, Any]:
    data = docx_bomb(1_000_000)
    started = time.perf_counter()
    try:
        parse_document(data, "bomb.docx")
        refused = ""
    except Exception as exc:
        refused = getattr(exc, "code", type(exc).__name__)
    refused_s = time.perf_counter() - started
    lifted = ParseLimits(
        max_paragraphs=10**9, max_compression_ratio=1e12, max_unpacked_bytes=10**12
    )

    async def never() -> bool:
        return False

    started = time.perf_counter()
    try:
        doc = await parse_bounded(data, "bomb.docx", ParseBudget(lifted, 300, 4096), never)
        lifted_result = f"parsed ({len(doc.full_text)} chars)"
    except Exception as exc:
        lifted_result = getattr(exc, "code", type(exc).__name__)
    return {
        "docx_kb": len(data) // 1024,
        "default_limits": {"result": refused, "seconds": round(refused_s, 3)},
        "limits_lifted_child_process": {
            "result": lifted_result,
            "seconds": round(time.perf_counter() - started, 2),
        },
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--body-mb", type=int, default=400)
    parser.add_argument("--unlimited", action="store_true", help="raise the body limit to 1 GB")
    args = parser.parse_args()
    print(json.dumps({"json_body": await body_limit(args), "docx_bomb": await docx(args)}))


if __name__ == "__main__":
    asyncio.run(main())
