"""Grounded first-token time of the embedded model, and the support check's cost; prints JSON.

For each thread setting (decode threads, prompt threads) the embedded model is loaded once,
then grounded prompts built like the chat turn's (`botgpt.conversations.answer_eval`) are sent
with ``max_tokens=1``: the time to the first token is prompt processing. Budgets: three short
passages (the QA set's, ~60 tokens each), three passages cut to ~128 tokens, five to ~256
(today's default chunk size). Each request uses another question and other passages so that
llama.cpp's prompt cache only reuses the shared system prompt, as in real turns. The support
check is timed on the QA set's paraphrases (one sentence) against their three passages.

    python bench/grounded_first_token.py [--runs 4] [--threads 1:1,1:2,2:2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path

from botgpt.config import Settings
from botgpt.conversations.answer_eval import (
    DocPassage,
    as_passages,
    grounded_request,
    load_dataset,
    select_sources,
)
from botgpt.llm.providers.local import LocalLlamaProvider
from botgpt.retrieval.embedders import MiniLMOnnxEmbedder
from botgpt.retrieval.support import check_support

DATASET = Path(__file__).parent / "data" / "grounded_qa"


def _widen(sources: list[DocPassage], pool: list[DocPassage], words: int) -> list[DocPassage]:
    """Each source padded with following passages of the set to about ``words`` words."""
    out = []
    for p in sources:
        text, i = p.text, pool.index(p)
        while len(text.split()) < words:
            i = (i + 1) % len(pool)
            text += " " + pool[i].text
        out.append(DocPassage(p.id, p.document, p.page, " ".join(text.split()[:words])))
    return out


async def main() -> None:
    """Measure and print JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--threads", default="1:1,1:2,2:2", help="decode:prompt pairs")
    args = parser.parse_args()
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    embedder = MiniLMOnnxEmbedder()
    data = load_dataset(DATASET)
    pool = list(data.passages.values())
    three = await select_sources(data, embedder, 3)
    five = await select_sources(data, embedder, 5)
    budgets = {
        "3 passages x ~60 tokens": lambda q: three[q],
        "3 passages x ~128 tokens": lambda q: _widen(three[q], pool, 95),
        "5 passages x ~256 tokens": lambda q: _widen(five[q], pool, 190),
    }
    check_ms = []
    for item in data.items:
        t0 = time.perf_counter()
        await check_support(item.paraphrase, as_passages(three[item.id]), embedder)
        check_ms.append((time.perf_counter() - t0) * 1000)
    results: dict[str, object] = {
        "cores": len(os.sched_getaffinity(0)),
        "load_average_at_start": os.getloadavg()[0],
        "support_check_ms_median": round(statistics.median(check_ms), 1),
    }
    questions = iter(data.items)
    for pair in args.threads.split(","):
        decode, prompt = (int(x) for x in pair.split(":"))
        provider = LocalLlamaProvider(n_threads=decode, n_threads_batch=prompt)
        await provider.load()
        row: dict[str, object] = {}
        try:
            for label, make in budgets.items():
                times = []
                for _ in range(args.runs):
                    item = next(questions, None)
                    if item is None:
                        questions = iter(data.items)
                        item = next(questions)
                    request = grounded_request(settings, provider, item.question, make(item.id), 1)
                    t0 = time.perf_counter()
                    async for chunk in provider.stream(request):
                        if chunk.delta or chunk.finish_reason:
                            times.append((time.perf_counter() - t0) * 1000)
                            break
                row[label] = {
                    "median_ms": round(statistics.median(times), 1),
                    "min_ms": round(min(times), 1),
                }
        finally:
            await provider.aclose()
        results[f"decode {decode} thread(s), prompt {prompt}"] = row
    results["load_average_at_end"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
