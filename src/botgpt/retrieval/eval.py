"""Retrieval evaluation: a BEIR-layout dataset loader and nDCG@k / Recall@k.

Metrics follow trec_eval / pytrec_eval as used by BEIR: gains are the qrels grades, DCG uses
log2(rank + 1), the ideal DCG is computed from the judged relevant documents, and scores are
averaged over the queries that have at least one relevant judgement (a query whose run is
empty scores 0). Runs are ranked lists, so ties are whatever order the caller gave.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

Qrels = dict[str, dict[str, int]]  # query id -> document id -> relevance grade
Run = Mapping[str, Sequence[str]]  # query id -> document ids, best first


@dataclass(frozen=True, slots=True)
class CorpusDoc:
    """One BEIR corpus entry."""

    id: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class BeirDataset:
    """Corpus, queries and the qrels of each split found."""

    corpus: dict[str, CorpusDoc]
    queries: dict[str, str]
    qrels: dict[str, Qrels]


def load_beir(directory: str | Path) -> BeirDataset:
    """Load corpus.jsonl, queries.jsonl and qrels/{split}.tsv (or qrels_{split}.tsv)."""
    root = Path(directory)
    corpus: dict[str, CorpusDoc] = {}
    with (root / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                doc_id = str(row["_id"])
                corpus[doc_id] = CorpusDoc(doc_id, row.get("title") or "", row.get("text") or "")
    queries: dict[str, str] = {}
    with (root / "queries.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                queries[str(row["_id"])] = row["text"]
    qrels: dict[str, Qrels] = {}
    files = sorted((root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
    files += sorted(root.glob("qrels_*.tsv"))
    for path in files:
        split = path.stem.removeprefix("qrels_")
        qrels[split] = load_qrels(path)
    return BeirDataset(corpus, queries, qrels)


def load_qrels(path: str | Path) -> Qrels:
    """Read a BEIR qrels TSV (header 'query-id corpus-id score')."""
    qrels: Qrels = {}
    with Path(path).open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        for row in reader:
            if len(row) < 3 or row[0] == "query-id":
                continue
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return qrels


def ndcg_at_k(run: Run, qrels: Qrels, k: int = 10) -> float:
    """Mean nDCG@k over the queries of ``qrels`` that have a relevant document."""
    values = []
    for query_id, judged in qrels.items():
        relevant = sorted((g for g in judged.values() if g > 0), reverse=True)
        if not relevant:
            continue
        ranked = _dedupe(run.get(query_id, ()))[:k]
        dcg = sum(judged.get(doc_id, 0) / math.log2(rank + 2) for rank, doc_id in enumerate(ranked))
        ideal = sum(g / math.log2(rank + 2) for rank, g in enumerate(relevant[:k]))
        values.append(dcg / ideal)
    return sum(values) / len(values) if values else 0.0


def recall_at_k(run: Run, qrels: Qrels, k: int = 100) -> float:
    """Mean fraction of each query's relevant documents found in its top ``k``."""
    values = []
    for query_id, judged in qrels.items():
        relevant = {doc_id for doc_id, g in judged.items() if g > 0}
        if not relevant:
            continue
        ranked = set(_dedupe(run.get(query_id, ()))[:k])
        values.append(len(relevant & ranked) / len(relevant))
    return sum(values) / len(values) if values else 0.0


def _dedupe(ranked: Sequence[str]) -> list[str]:
    # A document must count once even if several of its chunks were returned.
    return list(dict.fromkeys(ranked))
