"""Server cost per persisted chat turn with a zero-latency fake model; prints JSON.

Starts `botgpt serve` in a subprocess (one process, fake provider), creates a user
and conversations, then drives POST /api/v1/conversations/{id}/messages from a lean
raw-socket HTTP/1.1 client at concurrency 1 and 32. Reports requests/s, latency
p50/p99, the server's CPU time per turn (from /proc, user and system) and its memory
(RSS, peak).

On PostgreSQL (the database must be fresh: the server prints its admin key only when it
creates the admin) each phase also reports PostgreSQL's side, from `pg_stat_database`
and, when the server runs on this machine, /proc of the backends serving the database:
their CPU per turn (`pg_backend_cpu_ms_per_turn`, next to ours), transactions per turn
(each autocommit statement counts as one) and connections opened.

    python bench/chat_turn.py [--requests 3000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK, int(fields[12]) / CLK


def cpu_seconds(pid: int) -> float:
    return sum(cpu_times(pid))


# A busy backend publishes its statistics once a second at most; what is left when it goes
# idle, after 10 s. Both ends of a phase wait for that, so its transactions are all counted.
STATS_SETTLE_SECONDS = 11.0


class PgProbe:
    """PostgreSQL's side of a phase: its backends' CPU, transactions, sessions opened."""

    def __init__(self, url: str) -> None:
        self.dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.seen: dict[int, float] = {}  # backend pid -> latest CPU seconds read
        self.base: dict[int, float] = {}  # backend pid -> CPU seconds when the phase began
        self.stats: dict[str, int] = {}
        self.queries = 0  # this probe's own transactions, not the server's

    async def __aenter__(self) -> PgProbe:
        import asyncpg  # the server's own driver

        self.conn = await asyncpg.connect(self.dsn)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.close()

    async def _sample(self) -> dict[str, int]:
        rows = await self.conn.fetch(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        for row in rows:
            with contextlib.suppress(OSError):  # exited, or PostgreSQL is on another machine
                self.seen[row["pid"]] = cpu_seconds(row["pid"])
        stats = await self.conn.fetchrow(
            "SELECT xact_commit + xact_rollback AS xacts, sessions FROM pg_stat_database"
            " WHERE datname = current_database()"
        )
        self.queries += 2
        return dict(stats)

    async def start(self) -> None:
        """Note where the phase begins."""
        await asyncio.sleep(STATS_SETTLE_SECONDS)
        self.seen = {}
        self.stats = await self._sample()
        self.base = dict(self.seen)
        self.queries = 1  # the statistics read itself ends after its snapshot

    async def poll(self, stop: asyncio.Event) -> None:
        """Read backends' CPU twice a second (short-lived ones are caught before they exit)."""
        while not stop.is_set():
            await self._sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    async def finish(self, turns: int) -> dict[str, object]:
        """PostgreSQL's cost of the phase, per turn."""
        await asyncio.sleep(STATS_SETTLE_SECONDS)
        queries = self.queries + 1  # the backends' read below; the statistics read is not in
        end = await self._sample()
        cpu = sum(v - self.base.get(pid, 0.0) for pid, v in self.seen.items())
        xacts = end["xacts"] - self.stats["xacts"] - queries
        return {
            "pg_backend_cpu_ms_per_turn": round(cpu / turns * 1000, 3) if self.seen else None,
            "pg_transactions_per_turn": round(xacts / turns, 2),
            "pg_connections_opened": end["sessions"] - self.stats["sessions"],
        }


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


def latency_ms(seconds: list[float], count_key: str = "count") -> dict[str, float | int]:
    """p50/p95/p99/max in milliseconds of latencies in seconds, with how many and how many
    took over one second."""
    if len(seconds) < 2:
        return {count_key: len(seconds)}
    q = statistics.quantiles(seconds, n=100, method="inclusive")
    return {
        count_key: len(seconds),
        "p50_ms": round(q[49] * 1000, 2),
        "p95_ms": round(q[94] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
        "max_ms": round(max(seconds) * 1000, 2),
        "over_1s": sum(v > 1.0 for v in seconds),
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
    # Warm-up at the higher concurrency, so the pool has opened its connections.
    await load(port, key, ids, 32, min(500, args.requests))
    results: dict[str, object] = {}
    postgres = args.database_url.startswith("postgres")
    for conc in (1, 32):
        probe = PgProbe(args.database_url) if postgres else None
        if probe is not None:
            await probe.__aenter__()
            await probe.start()
            stop = asyncio.Event()
            polling = asyncio.create_task(probe.poll(stop))
        user0, sys0 = cpu_times(pid)
        r: dict[str, object] = dict(await load(port, key, ids, conc, args.requests))
        user1, sys1 = cpu_times(pid)
        cpu = user1 + sys1 - user0 - sys0
        r["server_cpu_ms_per_turn"] = round(cpu / args.requests * 1000, 3)
        r["server_user_cpu_ms_per_turn"] = round((user1 - user0) / args.requests * 1000, 3)
        r["server_system_cpu_ms_per_turn"] = round((sys1 - sys0) / args.requests * 1000, 3)
        r["turns_per_cpu_second"] = round(args.requests / cpu, 1) if cpu else None
        if probe is not None:
            stop.set()
            await polling
            r.update(await probe.finish(args.requests))
            await probe.__aexit__()
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
