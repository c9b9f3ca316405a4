"""Time to the first SSE event under streaming load; prints JSON.

Starts `botgpt serve` (one process; SQLite by default) with its OpenAI-compatible provider
pointed at a local upstream running in a child process. `--streams` clients keep one slow
streaming turn each open at all times (`POST /api/v1/conversations?stream=true`; a reply is
`--tokens` tokens `--interval` seconds apart, then the client starts the next one), while
`--turns` clients send ordinary JSON turns (quick replies) back to back. Reports the time
from sending a stream's request to its `start` event and to its first `delta`
(p50/p95/p99/max, share over 1 s), and the latency of the JSON turns. Bounded: the load
runs `--seconds` (default 40), then every client stops.

    python bench/stream_load.py [--streams 200] [--turns 4] [--seconds 40] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import random
import signal
import time
from typing import Any

from chat_turn import Conn, build, cpu_seconds, latency_ms, memory_mb
from chat_turn import start_server as start_botgpt

QUICK = "quick question"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def _upstream(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tokens: int, interval: float
) -> None:
    """One keep-alive connection of the upstream: every request gets an SSE chat stream."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await reader.readexactly(length)
            quick = QUICK.encode() in body
            # Replies of varied length, so streams do not start in lockstep waves.
            count = random.randint(tokens // 2, tokens * 3 // 2)
            count, pause = (3, 0.0) if quick else (count, interval)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            for i in range(count):
                if i and pause:
                    await asyncio.sleep(pause)
                chunk = {"choices": [{"index": 0, "delta": {"content": f"tok{i} "}}]}
                writer.write(_chunk(b"data: " + json.dumps(chunk).encode() + b"\n\n"))
                await writer.drain()
            final = {
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": count},
            }
            writer.write(_chunk(b"data: " + json.dumps(final).encode() + b"\n\n"))
            writer.write(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


def run_upstream(port_out: Any, tokens: int, interval: float) -> None:
    """Child process: serve the upstream until terminated."""

    async def main() -> None:
        server = await asyncio.start_server(
            lambda r, w: _upstream(r, w, tokens, interval), "127.0.0.1", 0, backlog=4096
        )
        port_out.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


async def stream_client(
    port: int,
    raw: bytes,
    deadline: float,
    starts: list[float],
    firsts: list[float],
    stagger: float = 0.0,
) -> int:
    """Open one stream after another until the deadline; returns how many failed."""
    failed = 0
    await asyncio.sleep(stagger)
    while time.perf_counter() < deadline:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sent = time.perf_counter()
        writer.write(raw)
        seen = b""
        got_start = got_delta = False
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    failed += 1
                    break
                now = time.perf_counter()
                seen += data
                if not got_start and b"event: start" in seen:
                    got_start = True
                    starts.append(now - sent)
                if not got_delta and b"event: delta" in seen:
                    got_delta = True
                    firsts.append(now - sent)
                if b"event: done" in seen:
                    break
                if b"event: error" in seen or seen.startswith(b"HTTP/1.1 5"):
                    failed += 1
                    break
                seen = seen[-64:]
        finally:
            writer.close()
    return failed


async def turn_client(port: int, raw: bytes, deadline: float, latencies: list[float]) -> int:
    """JSON turns back to back on one keep-alive connection; returns how many failed."""
    conn = Conn(port)
    await conn.open()
    failed = 0
    while time.perf_counter() < deadline:
        t = time.perf_counter()
        status, _ = await conn.request(raw)
        latencies.append(time.perf_counter() - t)
        failed += status != 201
    conn.writer.close()
    return failed


async def loop_lag(deadline: float, lags: list[float]) -> None:
    """How late this client's own event loop wakes up (its lag inflates every figure)."""
    while time.perf_counter() < deadline:
        t = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append(time.perf_counter() - t - 0.01)


async def login_tokens(port: int, count: int) -> list[str]:
    """Register `count` users and sign each in: streams use login (JWT) access tokens."""
    conn = Conn(port)
    await conn.open()
    tokens = []
    for i in range(count):
        account = {"email": f"bench-{i}-{random.random()}@example.com", "password": "x" * 12}
        status, body = await conn.request(build("POST", "/api/v1/auth/register", account, ""))
        assert status == 201, body
        status, body = await conn.request(build("POST", "/api/v1/auth/login", account, ""))
        assert status == 200, body
        tokens.append(json.loads(body)["access_token"])
    conn.writer.close()
    return tokens


async def run(args: argparse.Namespace) -> dict[str, object]:
    ctx = multiprocessing.get_context("spawn")
    ports: Any = ctx.Queue()
    upstream = ctx.Process(target=run_upstream, args=(ports, args.tokens, args.interval))
    upstream.start()
    up_port = ports.get(timeout=30)
    env = {
        "BOTGPT_LLM_PROVIDER": "openai",
        "BOTGPT_LLM_BASE_URL": f"http://127.0.0.1:{up_port}/v1",
        "BOTGPT_LLM_API_KEY": "bench",
        "BOTGPT_LLM_MODEL": "bench-model",
        "BOTGPT_LLM_TITLES": "false",
        "BOTGPT_LLM_MAX_CONNECTIONS": str(args.streams * 2),
        "BOTGPT_LOG_LEVEL": "WARNING",
        "BOTGPT_RATE_LIMIT_AUTH": "",
    }
    proc, port, key = await asyncio.to_thread(start_botgpt, args.database_url, env)
    try:
        tokens = [key] if args.api_key else await login_tokens(port, args.users)
        stream_raws = [
            build("POST", "/api/v1/conversations?stream=true", {"first_message": "tell me"}, t)
            for t in tokens
        ]
        turn_raw = build("POST", "/api/v1/conversations", {"first_message": QUICK}, key)
        # Warm-up: a few of each, not counted.
        await stream_client(port, stream_raws[0], 0, [], [])
        await turn_client(port, turn_raw, time.perf_counter() + 1, [])
        starts: list[float] = []
        firsts: list[float] = []
        turns: list[float] = []
        lags: list[float] = []
        cpu0 = cpu_seconds(proc.pid)
        began = time.perf_counter()
        deadline = began + args.seconds
        reply = args.tokens * args.interval
        tasks = [
            asyncio.create_task(
                stream_client(
                    port,
                    stream_raws[i % len(stream_raws)],
                    deadline,
                    starts,
                    firsts,
                    # Clients join over the length of one reply, as a steady load would.
                    stagger=random.uniform(0, reply) if not args.lockstep else 0.0,
                )
            )
            for i in range(args.streams)
        ] + [
            asyncio.create_task(turn_client(port, turn_raw, deadline, turns))
            for _ in range(args.turns)
        ]
        lagging = asyncio.create_task(loop_lag(deadline, lags))
        # Every client finishes its last reply after the deadline; bounded all the same.
        done, pending = await asyncio.wait(tasks, timeout=args.seconds + 120)
        for task in pending:
            task.cancel()
        await lagging
        elapsed = time.perf_counter() - began
        failures = sum(t.result() for t in done if not t.exception())
        return {
            "database": "postgresql" if args.database_url.startswith("postgres") else "sqlite",
            "streams": args.streams,
            "stream_credentials": "api key" if args.api_key else f"{args.users} login users",
            "lockstep": args.lockstep,
            "json_turn_clients": args.turns,
            "reply_seconds_mean": round(args.tokens * args.interval, 2),
            "seconds": round(elapsed, 1),
            "time_to_start_event": latency_ms(starts),
            "time_to_first_delta": latency_ms(firsts),
            "json_turn_latency": latency_ms(turns),
            "failed": failures,
            "client_loop_lag": latency_ms(lags),
            "server_cpu_percent": round((cpu_seconds(proc.pid) - cpu0) / elapsed * 100, 1),
            "server_memory": memory_mb(proc.pid),
        }
    finally:
        proc.send_signal(signal.SIGINT)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(proc.wait, 30)
        upstream.terminate()
        upstream.join(10)


def main() -> None:
    """Run the benchmark and print JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--turns", type=int, default=4, help="clients sending JSON turns")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--tokens", type=int, default=20, help="tokens of a streamed reply")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between tokens")
    parser.add_argument("--users", type=int, default=20, help="login users the streams use")
    parser.add_argument(
        "--api-key", action="store_true", help="streams use the admin's API key, not login tokens"
    )
    parser.add_argument(
        "--lockstep", action="store_true", help="start every stream client at the same moment"
    )
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop ships with the server's extras
        pass
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
