"""Server cost per persisted chat turn with a zero-latency fake model; prints JSON.

Starts `botgpt serve` in a subprocess (one process, fake provider), creates a user
and conversations, then drives POST /api/v1/conversations/{id}/messages from a lean
raw-socket HTTP/1.1 client at concurrency 1 and 32. Reports requests/s, latency
p50/p99, the server's CPU time per turn (from /proc) and its memory (RSS, peak).

    python bench/chat_turn.py [--requests 3000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def memory_mb(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return {"rss_mb": round(out["VmRSS"], 1), "peak_rss_mb": round(out["VmHWM"], 1)}


class Conn:
    """One keep-alive HTTP/1.1 connection; requests are pre-encoded bytes."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = await self.reader.readexactly(length)
        return status, body


def build(method: str, path: str, body: dict[str, object] | None, key: str) -> bytes:
    data = json.dumps(body).encode() if body is not None else b""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def setup(port: int, admin_key: str, conversations: int) -> tuple[str, list[str]]:
    conn = Conn(port)
    await conn.open()
    status, body = await conn.request(
        build("POST", "/api/v1/api-keys", {"name": "bench"}, admin_key)
    )
    assert status == 201, body
    key = json.loads(body)["key"]
    ids = []
    for i in range(conversations):
        status, body = await conn.request(
            build("POST", "/api/v1/conversations", {"first_message": f"bench {i}"}, key)
        )
        assert status == 201, body
        ids.append(json.loads(body)["conversation_id"])
    conn.writer.close()
    return key, ids


async def load(
    port: int, key: str, ids: list[str], concurrency: int, total: int
) -> dict[str, float]:
    """Turns on the conversations `ids`, `concurrency` at a time."""
    payloads = [
        build(
            "POST", f"/api/v1/conversations/{cid}/messages", {"content": "How are you today?"}, key
        )
        for cid in ids
    ]
    return await drive(port, payloads, concurrency, total)


async def drive(port: int, payloads: list[bytes], concurrency: int, total: int) -> dict[str, float]:
    """Send `total` pre-encoded requests, `concurrency` at a time; 200/201 count as success."""
    conns = [Conn(port) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in conns))
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))

    async def worker(n: int, conn: Conn) -> None:
        nonlocal errors
        for i in counter:
            raw = payloads[(n + i) % len(payloads)]
            t = time.perf_counter()
            status, _ = await conn.request(raw)
            latencies.append(time.perf_counter() - t)
            if status not in (200, 201):
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(n, c) for n, c in enumerate(conns)))
    elapsed = time.perf_counter() - started
    for c in conns:
        c.writer.close()
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {
        "requests": total,
        "errors": errors,
        "requests_per_s": round(total / elapsed, 1),
        "p50_ms": round(q[49] * 1000, 3),
        "p99_ms": round(q[98] * 1000, 3),
    }


def start_server(
    database_url: str, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], int, str]:
    """Start `botgpt serve` (the fake model unless `extra_env` says otherwise).

    Returns the process, its port and the admin key it printed.
    """
    tmp = tempfile.mkdtemp(prefix="botgpt-bench-")
    port = free_port()
    env = {
        **os.environ,
        "BOTGPT_LLM_PROVIDER": "fake",
        "BOTGPT_DATA_DIR": tmp,
        "BOTGPT_DATABASE_URL": database_url,
        "BOTGPT_PORT": str(port),
        "BOTGPT_LOG_LEVEL": "INFO",
        # One client sends thousands of turns: keep the limiter on (its cost is measured)
        # but out of the way.
        "BOTGPT_RATE_LIMIT_CHAT": "100000000/minute",
        **(extra_env or {}),
    }
    with open(Path(tmp) / "server.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "botgpt.cli", "serve"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    admin_key = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Admin API key" in line:
            admin_key = line.rsplit(" ", 1)[1].strip()
        if "starting at" in line:
            break
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            time.sleep(0.1)
    return proc, port, admin_key


async def measure(
    pid: int, port: int, admin_key: str, args: argparse.Namespace
) -> dict[str, object]:
    """Warm up, then measure at concurrency 1 and 32."""
    key, ids = await setup(port, admin_key, args.conversations)
    await load(port, key, ids, 8, min(500, args.requests))  # warm-up
    results: dict[str, object] = {}
    for conc in (1, 32):
        cpu0 = cpu_seconds(pid)
        r: dict[str, object] = dict(await load(port, key, ids, conc, args.requests))
        cpu = cpu_seconds(pid) - cpu0
        r["server_cpu_ms_per_turn"] = round(cpu / args.requests * 1000, 3)
        r["turns_per_cpu_second"] = round(args.requests / cpu, 1) if cpu else None
        results[f"concurrency_{conc}"] = r
    results["memory"] = memory_mb(pid)
    results["database"] = "postgresql" if args.database_url.startswith("postgres") else "sqlite"
    return results


def main() -> None:
    """Run the benchmark and print JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--conversations", type=int, default=64)
    args = parser.parse_args()
    proc, port, admin_key = start_server(args.database_url)
    try:
        print(json.dumps(asyncio.run(measure(proc.pid, port, admin_key, args)), indent=2))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)


if __name__ == "__main__":
    main()
