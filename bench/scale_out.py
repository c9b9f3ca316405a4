"""Chat-turn throughput of one and two serving processes on PostgreSQL + Redis; prints JSON.

For each model latency (the fake provider at 0 ms, and at 200 ms before the first token
with 20 ms between tokens) and each process count (`botgpt serve --workers 1` and
`--workers 2`), starts the server on a fresh PostgreSQL database and the given Redis,
creates 64 conversations, warms up, then drives POST /api/v1/conversations/{id}/messages
at concurrency 64 for a fixed time. Reports turns/s, latency p50/p99, errors, the server's
CPU seconds per turn (all its processes, from /proc), and the 1 -> 2 process scaling.

    python bench/scale_out.py --database-url postgresql+asyncpg://postgres@127.0.0.1:55432/x \
        --redis-url redis://127.0.0.1:56379/1 [--seconds 8]

The database named in the URL is only used to create (and drop) one database per run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import redis
from chat_turn import Conn, build, cpu_seconds, free_port, load, setup

CONCURRENCY = 64
LATENCIES = {
    "latency_0ms": {},
    "latency_200ms_20ms_per_token": {
        "BOTGPT_LLM_FAKE_LATENCY_SECONDS": "0.2",
        "BOTGPT_LLM_FAKE_TOKEN_INTERVAL_SECONDS": "0.02",
    },
}
# 80 characters: the fake model's echo streams in 8-character pieces, about 11 "tokens".
MESSAGE = "How are you today? Tell me something about scaling web servers out, please."


def tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and its children (uvicorn's worker processes)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(stat[1]) == pid:
            total += cpu_seconds(int(entry.name))
    return total


async def create_database(admin_url: str) -> tuple[str, str]:
    name = f"botgpt_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{admin_url.rpartition('/')[0]}/{name}", name


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def start(
    workers: int, database_url: str, redis_url: str, extra: dict[str, str]
) -> tuple[subprocess.Popen[str], int, str, Path]:
    """`botgpt serve --workers N` with the fake model; returns process, port, admin key."""
    tmp = Path(tempfile.mkdtemp(prefix="botgpt-scale-"))
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BOTGPT_")},
        "BOTGPT_LLM_PROVIDER": "fake",
        "BOTGPT_LLM_TITLES": "false",
        "BOTGPT_DATA_DIR": str(tmp),
        "BOTGPT_DATABASE_URL": database_url,
        "BOTGPT_REDIS_URL": redis_url,
        "BOTGPT_LOG_LEVEL": "WARNING",
        "BOTGPT_RATE_LIMIT_CHAT": "100000000/minute",
        # Room for 64 concurrent turns per process.
        "BOTGPT_DB_POOL_SIZE": "40",
        **extra,
    }
    with open(tmp / "server.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "botgpt.cli", "serve", "--workers", str(workers)],
            env={**env, "BOTGPT_PORT": str(port)},
            cwd=tmp,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    key = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Admin API key" in line:
            key = line.rsplit(" ", 1)[1].strip()
        if "starting at" in line:
            break
    return proc, port, key, tmp


async def wait_ready(port: int, limit_s: float = 90) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            conn = Conn(port)
            await conn.open()
            status, _ = await conn.request(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
            conn.writer.close()
            if status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the server did not become ready")


async def timed_load(port: int, key: str, ids: list[str], seconds: float) -> dict[str, float]:
    """Like chat_turn.load, but for a fixed time instead of a fixed count."""
    payloads = [
        build("POST", f"/api/v1/conversations/{cid}/messages", {"content": MESSAGE}, key)
        for cid in ids
    ]
    conns = [Conn(port) for _ in range(CONCURRENCY)]
    await asyncio.gather(*(c.open() for c in conns))
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(n: int, conn: Conn) -> None:
        nonlocal errors
        i = 0
        while time.perf_counter() < stop:
            t = time.perf_counter()
            status, _ = await conn.request(payloads[(n + i) % len(payloads)])
            latencies.append(time.perf_counter() - t)
            errors += status != 201
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(n, c) for n, c in enumerate(conns)))
    elapsed = time.perf_counter() - started
    for c in conns:
        c.writer.close()
    latencies.sort()
    return {
        "turns": len(latencies),
        "errors": errors,
        "turns_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 1),
    }


async def scenario(
    args: argparse.Namespace, workers: int, extra: dict[str, str]
) -> dict[str, float]:
    redis.Redis.from_url(args.redis_url).flushdb()
    url, name = await create_database(args.database_url)
    proc, port, admin_key, tmp = start(workers, url, args.redis_url, extra)
    try:
        await wait_ready(port)
        key, ids = await setup(port, admin_key, CONCURRENCY)
        await load(port, key, ids, CONCURRENCY, 4 * CONCURRENCY)  # warm-up
        cpu0 = tree_cpu(proc.pid)
        result = await timed_load(port, key, ids, args.seconds)
        cpu = tree_cpu(proc.pid) - cpu0
        result["server_cpu_ms_per_turn"] = round(cpu / max(1.0, result["turns"]) * 1000, 2)
        result["server_cpu_cores_busy"] = round(cpu / args.seconds, 2)
        return result
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        await drop_database(args.database_url, name)
        redis.Redis.from_url(args.redis_url).flushdb()
        shutil.rmtree(tmp, ignore_errors=True)


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    report: dict[str, object] = {
        "concurrency": CONCURRENCY,
        "seconds_per_run": args.seconds,
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg()[0],
    }
    for label, extra in LATENCIES.items():
        one = await scenario(args, 1, extra)
        two = await scenario(args, 2, extra)
        report[label] = {
            "processes_1": one,
            "processes_2": two,
            "scaling_1_to_2": round(two["turns_per_s"] / one["turns_per_s"], 2),
        }
    return report


def main() -> None:
    """Run the four scenarios and print JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True, help="PostgreSQL (admin) URL")
    parser.add_argument("--redis-url", required=True, help="a Redis database to use (flushed)")
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
