"""The local model's threads: first-come turns per batch, and a lower priority when asked."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from botgpt.retrieval.embedders import FairLock, MiniLMOnnxEmbedder


def test_the_fair_lock_lets_a_waiter_in_before_the_holder_takes_it_again() -> None:
    lock = FairLock()
    order: list[str] = []
    holding = threading.Event()

    def bulk() -> None:  # an ingestion: batch after batch
        for n in range(3):
            with lock:
                holding.set()
                order.append(f"bulk{n}")
                time.sleep(0.05)

    def query() -> None:  # a chat turn's query arrives while the first batch runs
        holding.wait()
        with lock:
            order.append("query")

    threads = [threading.Thread(target=bulk), threading.Thread(target=query)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert order == ["bulk0", "query", "bulk1", "bulk2"]


def _nice_values() -> list[int]:
    values = []
    for stat in Path("/proc/self/task").glob("*/stat"):
        fields = stat.read_text().rsplit(")", 1)[1].split()
        values.append(int(fields[16]))  # field 19 of stat: nice
    return values


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread priorities: Linux")
async def test_the_model_runs_on_threads_of_the_requested_priority() -> None:
    before = _nice_values().count(7)
    embedder = MiniLMOnnxEmbedder(threads=2, nice=7)
    try:
        vectors = await embedder.embed(["a sentence to embed"])
        assert vectors.shape == (1, 384)
        # The pool thread that ran it and the session's own thread(s) started from it.
        assert _nice_values().count(7) - before >= 2
    finally:
        await embedder.aclose()
