"""A Redis-backed job queue: jobs survive restarts and are shared by every process.

Jobs are entries of a Redis stream read through a consumer group. Each process reads one
entry at a time while fewer than `concurrency` of its jobs run (one reader, however many jobs
run at once); an entry stays *pending* until its handler has finished (then it is acknowledged
and deleted). If a worker dies, its entry is claimed by another worker once it has been idle for
`lease_seconds` (XAUTOCLAIM), and the handler gets ``redelivered: True`` in the payload so it
can take over work left half done. A running job renews its lease every third of it, so a
long ingestion is not taken over while it is alive. An entry delivered `max_deliveries`
times without finishing is dropped with an error in the log (a poison job must not loop).

`serve` processes may consume jobs too (the default) or only enqueue them, leaving the work
to `botgpt worker` processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from typing import Any

from redis.exceptions import RedisError, ResponseError

from botgpt.exceptions import ServiceUnavailable
from botgpt.jobs.queue import Job, JobQueue, UnknownJobKind
from botgpt.redis_channel import LazyRedis

log = logging.getLogger("botgpt.jobs")


async def _r(call: Any) -> Any:
    # redis-py annotates its asyncio commands as "X | Awaitable[X]"; they are awaitable here.
    return await call


class RedisJobQueue(JobQueue, LazyRedis):
    """Jobs in a Redis stream with a consumer group (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        stream: str = "botgpt:jobs",
        group: str = "workers",
        concurrency: int = 1,
        consume: bool = True,
        lease_seconds: float = 300.0,
        max_deliveries: int = 5,
        block_seconds: float = 0.5,
    ) -> None:
        JobQueue.__init__(self)
        LazyRedis.__init__(self, url)
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.stream = stream
        self.group = group
        self.concurrency = concurrency
        self.consume = consume
        self.lease_ms = int(lease_seconds * 1000)
        self.max_deliveries = max_deliveries
        self.block_ms = int(block_seconds * 1000)
        self._workers: list[asyncio.Task[None]] = []
        self._running: set[asyncio.Task[None]] = set()  # jobs under way in this process
        self._stopping = False
        self._name = f"{socket.gethostname()}-{os.getpid()}"

    async def _ensure_group(self) -> None:
        try:
            # From the start of the stream: jobs enqueued before any worker existed count.
            await _r(self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True))
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    async def healthy(self) -> bool:
        """Whether Redis answers."""
        try:
            return bool(await _r(self.client.ping()))
        except RedisError:
            return False

    async def enqueue(self, kind: str, payload: dict[str, Any]) -> None:
        """Append the job to the stream (durable once Redis has it)."""
        if kind not in self.handlers:
            raise UnknownJobKind(kind)
        fields = {"kind": kind, "payload": json.dumps(payload)}
        try:
            await _r(self.client.xadd(self.stream, fields))  # type: ignore[arg-type]
        except RedisError as exc:
            raise ServiceUnavailable("The job queue is unavailable; try again shortly.") from exc

    async def start(self) -> None:
        """Create the consumer group, start workers (if consuming), run the start hooks.

        The start hooks (resuming work a crash left in progress in the database) run only
        when the stream holds no job at all: a pending entry means some worker, here or
        elsewhere, owns that work and the lease mechanism will recover it.
        """
        await self._ensure_group()
        if self.consume and not self._workers:
            self._workers = [asyncio.create_task(self.work(), name="jobs-reader")]
        if await _r(self.client.xlen(self.stream)) == 0:
            await self.run_start_hooks()

    async def stop(self) -> None:
        """Stop the workers; a job cut short stays pending and is claimed after its lease.

        The reader is asked to stop and jobs get one blocking read's time to finish; only
        what is still busy after that (jobs) is cancelled. Cancelling a blocked redis-py read
        does not always end it, so the reader is left to end its read.
        """
        workers, self._workers = self._workers, []
        self._stopping = True
        if workers:
            await asyncio.wait({*workers, *self._running}, timeout=self.block_ms / 1000 + 1.0)
            busy = [task for task in (*workers, *self._running) if not task.done()]
            for task in busy:
                task.cancel()
            for task in busy:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._stopping = False
        await self.close_client()

    async def join(self) -> None:
        """Wait until no job is queued or running (tools and tests)."""
        # Polling: the work may finish in another process, nothing here could signal it.
        while await _r(self.client.xlen(self.stream)) > 0:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    async def work(self, consumer: str | None = None) -> None:
        """Take jobs until `stop`, up to `concurrency` running at once; waits out Redis outages."""
        consumer = consumer or f"{self._name}-w"
        slots = asyncio.Semaphore(self.concurrency)

        def finished(task: asyncio.Task[None]) -> None:
            self._running.discard(task)
            slots.release()

        while not self._stopping:
            await slots.acquire()
            try:
                entry = await self._next(consumer)
            except RedisError:
                slots.release()
                log.warning("job queue: Redis unavailable; retrying in 1 s", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            if entry is None:
                slots.release()
                continue
            task = asyncio.create_task(self._run(consumer, *entry), name="jobs-job")
            self._running.add(task)
            task.add_done_callback(finished)

    async def _next(self, consumer: str) -> tuple[str, dict[bytes, bytes]] | None:
        # Work whose worker died comes first, then new work.
        claimed = await _r(
            self.client.xautoclaim(
                self.stream, self.group, consumer, min_idle_time=self.lease_ms, count=1
            )
        )
        if claimed[1]:
            entry_id, fields = claimed[1][0]
            return _text(entry_id), fields
        read = await _r(
            self.client.xreadgroup(
                self.group, consumer, {self.stream: ">"}, count=1, block=self.block_ms
            )
        )
        for _stream, entries in read or []:
            for entry_id, fields in entries:
                return _text(entry_id), fields
        return None

    async def _run(self, consumer: str, entry_id: str, fields: dict[bytes, bytes]) -> None:
        info = await _r(self.client.xpending_range(self.stream, self.group, entry_id, entry_id, 1))
        deliveries = int(info[0]["times_delivered"]) if info else 1
        try:
            kind = _text(fields[b"kind"])
            payload = json.loads(fields[b"payload"])
        except (KeyError, ValueError):
            log.error("job queue: unreadable entry %s dropped", entry_id)
            await self._done(entry_id)
            return
        if deliveries > self.max_deliveries:
            log.error(
                "job %s dropped after %d deliveries", kind, deliveries, extra={"job_kind": kind}
            )
            await self._done(entry_id)
            return
        if deliveries > 1:
            payload["redelivered"] = True
        renew = asyncio.create_task(self._renew(consumer, entry_id))
        try:
            await self.run_job(Job(kind, payload))
        finally:
            renew.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renew
        await self._done(entry_id)

    async def _renew(self, consumer: str, entry_id: str) -> None:
        """Reset the entry's idle time while its job runs, so no one else claims it."""
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            with contextlib.suppress(RedisError):
                await _r(
                    self.client.xclaim(
                        self.stream, self.group, consumer, 0, [entry_id], justid=True
                    )
                )

    async def _done(self, entry_id: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(self.stream, self.group, entry_id)
        pipe.xdel(self.stream, entry_id)
        await pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
