"""Server cost of a bot's public chat turn next to a signed-in chat turn; prints JSON.

One `botgpt serve` (fake model at 0 ms): a bot, 64 visitor sessions and 64 signed-in
conversations; then the same number of turns through POST /api/v1/chat/{bot_id} (visitor,
with the bot's profile, caps and CORS check) and POST /api/v1/conversations/{id}/messages
(signed-in), at concurrency 1 and 32, with the server's CPU time per turn from /proc.

    python bench/public_chat_turn.py [--requests 2000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from chat_turn import (
    Conn,
    build,
    cpu_seconds,
    drive,
    memory_mb,
    setup,
    start_server,
)


async def visitor_setup(port: int, key: str, sessions: int) -> tuple[str, list[str]]:
    conn = Conn(port)
    await conn.open()
    bot = {"name": "bench bot", "session_message_cap": 10000, "daily_message_cap": 1000000}
    status, body = await conn.request(build("POST", "/api/v1/bots", bot, key))
    assert status == 201, body
    bot_id = json.loads(body)["id"]
    ids = []
    for i in range(sessions):
        status, body = await conn.request(
            build("POST", f"/api/v1/chat/{bot_id}", {"message": f"hello {i}"}, "")
        )
        assert status == 200, body
        ids.append(json.loads(body)["session_id"])
    conn.writer.close()
    return bot_id, ids


async def measure(
    pid: int, port: int, admin_key: str, args: argparse.Namespace
) -> dict[str, object]:
    key, conv_ids = await setup(port, admin_key, 64)
    bot_id, sessions = await visitor_setup(port, key, 64)
    kinds = {
        "signed_in": [
            build("POST", f"/api/v1/conversations/{c}/messages", {"content": "Hi?"}, key)
            for c in conv_ids
        ],
        "public": [
            build(
                "POST", f"/api/v1/chat/{bot_id}", {"message": "How are you?", "session_id": s}, ""
            )
            for s in sessions
        ],
    }
    results: dict[str, object] = {}
    for payloads in kinds.values():
        await drive(port, payloads, 8, min(300, args.requests))  # warm-up
    for conc in (1, 32):
        for name, payloads in kinds.items():
            cpu0 = cpu_seconds(pid)
            r: dict[str, object] = dict(await drive(port, payloads, conc, args.requests))
            cpu = cpu_seconds(pid) - cpu0
            r["server_cpu_ms_per_turn"] = round(cpu / args.requests * 1000, 3)
            results[f"{name}_concurrency_{conc}"] = r
    for conc in (1, 32):
        public = results[f"public_concurrency_{conc}"]["server_cpu_ms_per_turn"]  # type: ignore[index]
        signed = results[f"signed_in_concurrency_{conc}"]["server_cpu_ms_per_turn"]  # type: ignore[index]
        results[f"public_vs_signed_in_cpu_concurrency_{conc}"] = round(public / signed, 3)
    results["memory"] = memory_mb(pid)
    results["database"] = "postgresql" if args.database_url.startswith("postgres") else "sqlite"
    return results


def main() -> None:
    """Run the benchmark and print JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    proc, port, admin_key = start_server(
        args.database_url, {"BOTGPT_RATE_LIMIT_PUBLIC": "100000000/minute"}
    )
    try:
        print(json.dumps(asyncio.run(measure(proc.pid, port, admin_key, args)), indent=2))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)


if __name__ == "__main__":
    main()
