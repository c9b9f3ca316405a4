"""One transaction for the index writes of many documents that finish together.

Documents whose chunks came back from one model call all want to write at the same moment;
a transaction each would queue them for SQLite's single writer (and a commit each costs
PostgreSQL a WAL flush), with chat turns waiting in that queue. Their writes go in one
transaction instead, while the next group gathers.

A write is a function of the connection that either writes everything it has to, or refuses
(raises one of the ``refusals`` exceptions) before writing anything: e.g. its fenced status
update found the document deleted. A refusal goes back to its caller alone; any other error
rolls the group back and each write is then run in a transaction of its own, so one
document's failure stays its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

Write = Callable[[AsyncConnection], Awaitable[None]]


@dataclass(slots=True)
class _Pending:
    write: Write
    future: asyncio.Future[None]


class GroupWriter:
    """Runs concurrent writes in shared transactions (see the module docstring)."""

    def __init__(
        self,
        engine: AsyncEngine,
        refusals: tuple[type[Exception], ...],
        max_writes: int = 64,
    ) -> None:
        self.engine = engine
        self.refusals = refusals
        self.max_writes = max_writes
        self._waiting: deque[_Pending] = deque()
        self._runner: asyncio.Task[None] | None = None
        self.transactions = 0  # committed or attempted (for tests and benchmarks)

    async def write(self, write: Write) -> None:
        """Run ``write`` in a transaction shared with other callers; returns once committed."""
        loop = asyncio.get_running_loop()
        pending = _Pending(write, loop.create_future())
        self._waiting.append(pending)
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._serve(), name="index-group-writer")
        await pending.future

    def _take(self) -> list[_Pending]:
        taken: list[_Pending] = []
        while self._waiting and len(taken) < self.max_writes:
            pending = self._waiting.popleft()
            if not pending.future.done():  # a cancelled caller's write is dropped
                taken.append(pending)
        return taken

    async def _serve(self) -> None:
        while True:
            group = self._take()
            if not group:
                return
            try:
                await self._commit(group)
            except BaseException:
                for pending in (*group, *self._waiting):
                    pending.future.cancel()
                self._waiting.clear()
                raise

    async def _commit(self, group: list[_Pending]) -> None:
        refused: dict[int, Exception] = {}
        try:
            self.transactions += 1
            async with self.engine.begin() as conn:
                for n, pending in enumerate(group):
                    try:
                        await pending.write(conn)
                    except self.refusals as exc:
                        refused[n] = exc
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0].future, exc)
                return
            for pending in group:  # one write broke the group: each on its own
                await self._alone(pending)
            return
        for n, pending in enumerate(group):
            _settle(pending.future, refused.get(n))

    async def _alone(self, pending: _Pending) -> None:
        if pending.future.done():
            return
        try:
            self.transactions += 1
            async with self.engine.begin() as conn:
                await pending.write(conn)
        except Exception as exc:
            _settle(pending.future, exc)
        else:
            _settle(pending.future, None)


def _settle(future: asyncio.Future[None], error: Exception | None) -> None:
    with contextlib.suppress(asyncio.InvalidStateError):  # its caller was cancelled
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
