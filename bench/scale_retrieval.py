"""Retrieval at scale: keyword, vector and hybrid search over 10k..1M chunks, per store.

The corpus is bench/scale_corpus.py's (SciFact chunks repeated with perturbed vectors across
100 owners, the 300 test queries with their vectors, exact ground truth). Each store's part
builds its index once per size, keeps it on disk and prints one JSON object: build time, disk,
p50/p95 of keyword, vector and hybrid search filtered to one owner and across all owners, and
recall@10 of the vector search against exact search.

    .venv/bin/python bench/scale_retrieval.py --store sqlite --chunks 100000     # scale_sqlite.py
    .venv/bin/python bench/scale_retrieval.py --store postgres --chunks 1000000  # scale_pg.py

Each store's options: ``--store X --help``.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

SCRIPTS = {"sqlite": "scale_sqlite.py", "postgres": "scale_pg.py"}


def main() -> None:
    args = sys.argv[1:]
    store = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--store"), None)
    if store is None:
        store = next((a.split("=", 1)[1] for a in args if a.startswith("--store=")), None)
    if store not in SCRIPTS:
        raise SystemExit(f"usage: scale_retrieval.py --store {{{','.join(SCRIPTS)}}} ...")
    runpy.run_path(str(Path(__file__).with_name(SCRIPTS[store])), run_name="__main__")


if __name__ == "__main__":
    main()
