"""One embedding call for the chunks of many documents being ingested at once.

A short document gives one or two chunks; embedding them alone makes tiny model batches that
cost nearly as much per call as full ones. Ingestion jobs running concurrently hand their
chunks to this batcher instead: one task embeds everything waiting (up to ``max_texts``) in
one call, which the local model sorts by token length into batches with little padding, and
hands each document exactly its own vectors. While a call runs, the next documents' chunks
gather, so the model never waits for parsing, chunking or database writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from botgpt.retrieval.embedders import Embedder, Vectors

log = logging.getLogger("botgpt.ingest")


@dataclass(slots=True)
class _Request:
    texts: list[str]
    future: asyncio.Future[Vectors]


class EmbeddingBatcher:
    """Merges concurrent `embed` calls into few calls of the underlying embedder."""

    def __init__(self, embedder: Embedder, max_texts: int = 64) -> None:
        if max_texts < 1:
            raise ValueError("max_texts must be at least 1")
        self.embedder = embedder
        self.max_texts = max_texts
        self._waiting: deque[_Request] = deque()
        self._runner: asyncio.Task[None] | None = None
        self.calls = 0  # calls made to the underlying embedder (for tests and benchmarks)

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Vectors of ``texts`` (in order), embedded together with other callers' texts."""
        if not texts:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)
        loop = asyncio.get_running_loop()
        request = _Request(list(texts), loop.create_future())
        self._waiting.append(request)
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._serve(), name="embedding-batcher")
        # A caller that is cancelled cancels its future; the batcher then skips its texts.
        return await request.future

    def _take(self) -> list[_Request]:
        """The waiting requests of the next call: at least one, then up to ``max_texts``."""
        taken: list[_Request] = []
        size = 0
        while self._waiting:
            request = self._waiting[0]
            if request.future.done():  # its caller gave up
                self._waiting.popleft()
                continue
            if taken and size + len(request.texts) > self.max_texts:
                break
            taken.append(self._waiting.popleft())
            size += len(request.texts)
        return taken

    async def _serve(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return
            try:
                await self._embed(batch)
            except BaseException:
                # Stopped (shutdown): nobody must wait for vectors that will not come.
                for request in (*batch, *self._waiting):
                    request.future.cancel()
                self._waiting.clear()
                raise

    async def _embed(self, batch: list[_Request]) -> None:
        texts = [text for request in batch for text in request.texts]
        self.calls += 1
        try:
            vectors = await self.embedder.embed(texts)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0], exc)
                return
            # One document's failure must stay its own: retry each alone.
            log.warning("merged embedding call failed; embedding its documents one by one")
            for request in batch:
                if request.future.done():
                    continue
                self.calls += 1
                try:
                    _settle(request, await self.embedder.embed(request.texts))
                except Exception as alone:
                    _settle(request, alone)
            return
        offset = 0
        for request in batch:
            _settle(request, vectors[offset : offset + len(request.texts)])
            offset += len(request.texts)


def _settle(request: _Request, outcome: Vectors | Exception) -> None:
    with contextlib.suppress(asyncio.InvalidStateError):  # cancelled by its caller meanwhile
        if isinstance(outcome, Exception):
            request.future.set_exception(outcome)
        else:
            request.future.set_result(outcome)
