"""Streaming cost of BOT GPT over the provider itself; prints JSON.

1. Time to first token (TTFT) added by BOT GPT: a local OpenAI-compatible upstream
   answers with an SSE stream; we measure TTFT calling the upstream directly and
   through BOT GPT (`POST .../conversations?stream=true`, provider=openai pointing at
   the upstream), one client, sequential requests; `added_ms` = difference of p50s.
2. Concurrent SSE streams held by one server process: N clients stream slow replies
   (one token a second) at once; we report how many got their first token and
   finished, and the server's memory (RSS) while all were open.

    python bench/stream_overhead.py [--requests 300] [--streams 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import statistics
import subprocess
import time

from chat_turn import build, memory_mb
from chat_turn import start_server as start_botgpt


class Upstream:
    """A minimal OpenAI-compatible chat server streaming `tokens` chunks `interval` apart."""

    def __init__(self) -> None:
        self.tokens = 5
        self.interval = 0.0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"transfer-encoding: chunked\r\n\r\n"
                )
                for i in range(self.tokens):
                    if i and self.interval:
                        await asyncio.sleep(self.interval)
                    chunk = {"choices": [{"index": 0, "delta": {"content": f"tok{i} "}}]}
                    self._chunk(writer, b"data: " + json.dumps(chunk).encode() + b"\n\n")
                    await writer.drain()
                final = {
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": self.tokens},
                }
                self._chunk(writer, b"data: " + json.dumps(final).encode() + b"\n\n")
                self._chunk(writer, b"data: [DONE]\n\n")
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    @staticmethod
    def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))


async def first_token(port: int, raw: bytes, marker: bytes) -> tuple[float, asyncio.StreamWriter]:
    """Send `raw` on a fresh connection; seconds until `marker` arrives."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()
    writer.write(raw)
    seen = b""
    while marker not in seen:
        data = await reader.read(65536)
        if not data:
            raise RuntimeError("stream closed before the first token")
        seen += data
    elapsed = time.perf_counter() - started
    # Drain to the end so the next request starts clean.
    while not seen.endswith(b"0\r\n\r\n"):
        data = await reader.read(65536)
        if not data:
            break
        seen += data
    return elapsed, writer


def quantiles(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=100)
    return {"p50_ms": round(q[49] * 1000, 3), "p90_ms": round(q[89] * 1000, 3)}


def start_server(upstream_port: int) -> tuple[subprocess.Popen[str], int, str]:
    """`botgpt serve` with the OpenAI-compatible provider pointed at the upstream."""
    return start_botgpt(
        "",
        {
            "BOTGPT_LLM_PROVIDER": "openai",
            "BOTGPT_LLM_BASE_URL": f"http://127.0.0.1:{upstream_port}/v1",
            "BOTGPT_LLM_API_KEY": "bench",
            "BOTGPT_LLM_MODEL": "bench-model",
            "BOTGPT_LLM_TITLES": "false",
            "BOTGPT_LOG_LEVEL": "WARNING",
        },
    )


async def hold_stream(port: int, raw: bytes, first: asyncio.Event, counts: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    seen = b""
    got_first = False
    while True:
        data = await reader.read(65536)
        if not data:
            break
        seen += data
        if not got_first and b"event: delta" in seen:
            got_first = True
            counts["first_token"] += 1
            if counts["first_token"] == counts["total"]:
                first.set()
        if b"event: done" in seen:
            counts["done"] += 1
            break
        seen = seen[-64:]
    writer.close()


async def run(args: argparse.Namespace) -> dict[str, object]:
    upstream = Upstream()
    up_server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0, backlog=4096)
    up_port = up_server.sockets[0].getsockname()[1]
    proc, port, key = await asyncio.to_thread(start_server, up_port)
    try:
        body = {
            "model": "bench-model",
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
        direct_raw = build("POST", "/v1/chat/completions", body, "bench")
        via_raw = build("POST", "/api/v1/conversations?stream=true", {"first_message": "hi"}, key)
        direct: list[float] = []
        via: list[float] = []
        for i in range(args.requests + 20):
            d, w1 = await first_token(up_port, direct_raw, b"tok0")
            v, w2 = await first_token(port, via_raw, b"event: delta")
            w1.close()
            w2.close()
            if i >= 20:  # warm-up excluded
                direct.append(d)
                via.append(v)
        ttft = {
            "requests": args.requests,
            "direct": quantiles(direct),
            "through_botgpt": quantiles(via),
        }
        ttft["added_p50_ms"] = round(
            ttft["through_botgpt"]["p50_ms"] - ttft["direct"]["p50_ms"],
            3,  # type: ignore[index]
        )

        # Many slow streams at once.
        upstream.tokens, upstream.interval = args.stream_seconds, 1.0
        before = memory_mb(proc.pid)
        counts = {"total": args.streams, "first_token": 0, "done": 0}
        all_first = asyncio.Event()
        started = time.perf_counter()
        tasks = [
            asyncio.create_task(hold_stream(port, via_raw, all_first, counts))
            for _ in range(args.streams)
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_first.wait(), timeout=120)
        open_after = round(time.perf_counter() - started, 2)
        during = memory_mb(proc.pid)
        await asyncio.wait(tasks, timeout=args.stream_seconds + 120)
        streams = {
            "streams": args.streams,
            "got_first_token": counts["first_token"],
            "completed": counts["done"],
            "seconds_until_all_streaming": open_after,
            "rss_before_mb": before["rss_mb"],
            "rss_with_all_open_mb": during["rss_mb"],
            "peak_rss_mb": memory_mb(proc.pid)["peak_rss_mb"],
        }
        return {"time_to_first_token": ttft, "concurrent_streams": streams}
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.to_thread(proc.wait, 30)
        up_server.close()


def main() -> None:
    """Run the benchmark and print JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--stream-seconds", type=int, default=15)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
