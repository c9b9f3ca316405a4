"""The Redis job queue against a real Redis: durable, shared, crash-safe, poison-proof."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as redis

from botgpt.exceptions import ServiceUnavailable
from botgpt.jobs.redis_queue import RedisJobQueue

REDIS_URL = os.environ.get("BOTGPT_TEST_REDIS_URL", "")
pytestmark = pytest.mark.skipif(not REDIS_URL, reason="BOTGPT_TEST_REDIS_URL is not set")

MakeQueue = Callable[..., RedisJobQueue]


@pytest.fixture
async def make_queue() -> AsyncIterator[MakeQueue]:
    """Queues on one fresh stream; all stopped and the stream removed afterwards."""
    stream = f"test:jobs:{uuid.uuid4().hex}"
    made: list[RedisJobQueue] = []

    def make(**options: Any) -> RedisJobQueue:
        queue = RedisJobQueue(REDIS_URL, stream=stream, block_seconds=0.1, **options)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        await queue.stop()
    client = redis.Redis.from_url(REDIS_URL)
    await client.delete(stream)
    await client.aclose()


async def test_jobs_run_and_leave_nothing_behind(make_queue: MakeQueue) -> None:
    queue = make_queue()
    seen: list[dict[str, Any]] = []

    async def handle(payload: dict[str, Any]) -> None:
        seen.append(payload)

    queue.register("ping", handle)
    await queue.start()
    for n in range(3):
        await queue.enqueue("ping", {"n": n})
    await asyncio.wait_for(queue.join(), 5)
    assert sorted(p["n"] for p in seen) == [0, 1, 2]
    assert await queue.client.xlen(queue.stream) == 0


async def test_a_job_enqueued_by_one_process_runs_in_another(make_queue: MakeQueue) -> None:
    producer = make_queue(consume=False)  # a `serve` process that leaves work to workers
    producer.register("ping", lambda payload: asyncio.sleep(0))
    await producer.start()
    await producer.enqueue("ping", {"n": 1})
    await asyncio.sleep(0.3)
    assert await producer.client.xlen(producer.stream) == 1  # nobody consumed it

    done = asyncio.Event()

    async def handle(payload: dict[str, Any]) -> None:
        done.set()

    worker = make_queue()
    worker.register("ping", handle)
    await worker.start()
    await asyncio.wait_for(done.wait(), 5)


async def test_the_job_of_a_dead_worker_is_taken_over_and_marked(make_queue: MakeQueue) -> None:
    queue = make_queue(lease_seconds=0.3)
    got: list[dict[str, Any]] = []

    async def handle(payload: dict[str, Any]) -> None:
        got.append(payload)

    queue.register("ingest", handle)
    await queue._ensure_group()
    await queue.enqueue("ingest", {"document_id": "d1"})
    # A worker takes the entry and dies before finishing: it stays pending.
    taken = await queue.client.xreadgroup(queue.group, "dead-worker", {queue.stream: ">"}, count=1)
    assert taken
    await queue.start()
    await asyncio.wait_for(queue.join(), 5)
    assert got == [{"document_id": "d1", "redelivered": True}]


async def test_a_running_job_keeps_its_lease(make_queue: MakeQueue) -> None:
    runs: list[str] = []

    async def slow(payload: dict[str, Any]) -> None:
        runs.append(payload["id"])
        await asyncio.sleep(1.0)  # much longer than the lease

    first, second = make_queue(lease_seconds=0.3), make_queue(lease_seconds=0.3)
    for queue in (first, second):
        queue.register("slow", slow)
    await first.start()
    await first.enqueue("slow", {"id": "a"})
    await asyncio.sleep(0.2)  # the first worker has it
    await second.start()
    await asyncio.wait_for(first.join(), 5)
    assert runs == ["a"]  # never run twice


async def test_a_poison_job_is_dropped_after_max_deliveries(
    make_queue: MakeQueue, caplog: pytest.LogCaptureFixture
) -> None:
    queue = make_queue(lease_seconds=0.1, max_deliveries=2)
    calls = 0

    async def handle(payload: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1

    queue.register("poison", handle)
    await queue._ensure_group()
    await queue.enqueue("poison", {})
    for worker in ("w1", "w2"):  # two workers die holding it
        await queue.client.xautoclaim(queue.stream, queue.group, worker, 0, count=1)
        await queue.client.xreadgroup(queue.group, worker, {queue.stream: ">"}, count=1)
        await asyncio.sleep(0.15)
    await queue.start()
    await asyncio.wait_for(queue.join(), 5)
    assert calls == 0
    assert "dropped after" in caplog.text


async def test_start_hooks_run_only_when_no_job_is_in_flight(make_queue: MakeQueue) -> None:
    ran: list[str] = []

    async def hook() -> None:
        ran.append("resume")

    busy = make_queue(consume=False)
    busy.register("ping", lambda payload: asyncio.sleep(0))
    busy.on_start(hook)
    await busy.start()
    assert ran == ["resume"]  # empty stream: nothing owns any work
    await busy.enqueue("ping", {})
    again = make_queue(consume=False)
    again.on_start(hook)
    await again.start()
    assert ran == ["resume"]  # a job is in the stream: its owner recovers it


async def test_enqueue_while_redis_is_down_is_a_clear_503() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = RedisJobQueue(f"redis://127.0.0.1:{port}/0")
    queue.register("ping", lambda payload: asyncio.sleep(0))
    with pytest.raises(ServiceUnavailable):
        await queue.enqueue("ping", {})
    await queue.stop()
