"""The in-process job queue: handlers, failures, start hooks, stop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from botgpt.jobs.queue import InProcessJobQueue, UnknownJobKind


async def test_runs_jobs_with_bounded_concurrency_and_survives_failures() -> None:
    queue = InProcessJobQueue(concurrency=2)
    running = 0
    peak = 0
    done: list[int] = []

    async def work(payload: dict[str, Any]) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        if payload["n"] == 3:
            raise RuntimeError("boom")
        done.append(payload["n"])

    queue.register("work", work)
    await queue.start()
    try:
        for n in range(8):
            await queue.enqueue("work", {"n": n})
        await asyncio.wait_for(queue.join(), 5)
    finally:
        await queue.stop()
    assert sorted(done) == [0, 1, 2, 4, 5, 6, 7]
    assert peak == 2
    with pytest.raises(UnknownJobKind):
        await queue.enqueue("nope", {})


async def test_start_hooks_run_and_stop_cancels_running_jobs() -> None:
    queue = InProcessJobQueue()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow(_: dict[str, Any]) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def hook() -> None:
        await queue.enqueue("slow", {})

    queue.register("slow", slow)
    queue.on_start(hook)
    await queue.start()
    assert queue.running
    await asyncio.wait_for(started.wait(), 5)
    await queue.stop()
    assert cancelled.is_set() and not queue.running
