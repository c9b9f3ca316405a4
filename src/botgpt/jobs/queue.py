"""Background jobs: a small queue interface and its in-process implementation.

A job is a ``kind`` plus a JSON-able ``payload``; handlers are registered per kind. Start
hooks run once when the queue starts (document ingestion uses one to resume jobs a crash
interrupted). The scale-out setup puts a Redis-backed queue behind the same interface, with
``work()`` as the loop of each ``botgpt worker`` process.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botgpt.config import Settings

log = logging.getLogger("botgpt.jobs")

Handler = Callable[[dict[str, Any]], Awaitable[None]]
StartHook = Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Job:
    """One unit of background work."""

    kind: str
    payload: dict[str, Any]


class UnknownJobKind(Exception):
    """A job was enqueued for a kind no handler is registered for."""


class JobQueue(abc.ABC):
    """Runs registered handlers for enqueued jobs, off the request path."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.start_hooks: list[StartHook] = []

    def register(self, kind: str, handler: Handler) -> None:
        """Route jobs of ``kind`` to ``handler``."""
        self.handlers[kind] = handler

    def on_start(self, hook: StartHook) -> None:
        """Run ``hook`` each time the queue starts (after workers are up)."""
        self.start_hooks.append(hook)

    @abc.abstractmethod
    async def enqueue(self, kind: str, payload: dict[str, Any]) -> None:
        """Schedule a job; returns once it is durably queued (not when it has run)."""

    @abc.abstractmethod
    async def work(self) -> None:
        """The worker loop: take jobs and run their handlers until the queue stops."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Start workers and run the start hooks."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop workers; unfinished jobs are resumed by the start hooks of the next start."""

    @abc.abstractmethod
    async def join(self) -> None:
        """Wait until every queued job has run (for tools and tests)."""

    async def run_start_hooks(self) -> None:
        """Run the start hooks; a failing hook is logged and the others still run."""
        for hook in self.start_hooks:
            try:
                await hook()
            except Exception:
                log.exception("job queue start hook failed")

    async def healthy(self) -> bool:
        """Whether the queue can take jobs now (its backing store answers)."""
        return True

    async def run_job(self, job: Job) -> None:
        """Run one job's handler; failures are logged, never propagated to the worker loop."""
        handler = self.handlers.get(job.kind)
        if handler is None:
            log.error("no handler for job kind %r; dropped", job.kind)
            return
        try:
            await handler(job.payload)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s failed", job.kind, extra={"job_kind": job.kind})


class InProcessJobQueue(JobQueue):
    """Jobs in an ``asyncio.Queue`` served by ``concurrency`` tasks of this process.

    Handlers must keep CPU-heavy work off the event loop themselves (threads); the small
    concurrency bounds how much of the machine background work can take from requests.
    Nothing survives the process: the start hooks re-create jobs from the database state.
    """

    def __init__(self, concurrency: int = 1) -> None:
        super().__init__()
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self._queue: asyncio.Queue[Job] | None = None
        self._workers: list[asyncio.Task[None]] = []

    @property
    def running(self) -> bool:
        """Whether workers are running."""
        return bool(self._workers)

    def _jobs(self) -> asyncio.Queue[Job]:
        # Created lazily so the queue binds to the loop that uses it, not the one that built it.
        if self._queue is None:
            self._queue = asyncio.Queue()
        return self._queue

    async def enqueue(self, kind: str, payload: dict[str, Any]) -> None:
        """Put a job on the in-memory queue."""
        if kind not in self.handlers:
            raise UnknownJobKind(kind)
        self._jobs().put_nowait(Job(kind, dict(payload)))

    async def work(self) -> None:
        """Serve jobs one at a time until cancelled."""
        jobs = self._jobs()
        while True:
            job = await jobs.get()
            try:
                await self.run_job(job)
            finally:
                jobs.task_done()

    async def start(self) -> None:
        """Start the worker tasks, then run the start hooks (which may enqueue jobs)."""
        if self._workers:
            return
        self._workers = [
            asyncio.create_task(self.work(), name=f"jobs-worker-{i}")
            for i in range(self.concurrency)
        ]
        await self.run_start_hooks()

    async def stop(self) -> None:
        """Cancel the workers; a job cut short stays unfinished in the database."""
        workers, self._workers = self._workers, []
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Jobs still waiting are dropped with the process; their rows stay in progress.
        self._queue = None

    async def join(self) -> None:
        """Wait until the queue is empty and no job is running."""
        await self._jobs().join()


def make_queue(settings: Settings, *, consume: bool | None = None) -> JobQueue:
    """Redis-backed with BOTGPT_REDIS_URL (shared by processes), else in this process."""
    if settings.redis_url:
        from botgpt.jobs.redis_queue import RedisJobQueue

        return RedisJobQueue(
            settings.redis_url,
            concurrency=settings.ingest_workers,
            consume=settings.jobs_in_server if consume is None else consume,
        )
    return InProcessJobQueue(settings.ingest_workers)
