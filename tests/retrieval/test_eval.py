"""BEIR loader and nDCG / Recall, checked against hand-computed values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from botgpt.retrieval.eval import load_beir, ndcg_at_k, recall_at_k


def test_ndcg_hand_computed() -> None:
    qrels = {"q1": {"d1": 1, "d2": 1}, "q2": {"d9": 2}}
    run = {"q1": ["d3", "d1", "d4", "d2"], "q2": ["d9"]}
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3)
    assert ndcg_at_k(run, qrels, 10) == pytest.approx((dcg / idcg + 1.0) / 2)
    # Cut-off: with k=2 only d1 at rank 2 counts for q1.
    assert ndcg_at_k(run, qrels, 2) == pytest.approx(((1 / math.log2(3)) / idcg + 1.0) / 2)


def test_graded_relevance_and_duplicates() -> None:
    qrels = {"q": {"a": 2, "b": 1}}
    assert ndcg_at_k({"q": ["a", "b"]}, qrels) == pytest.approx(1.0)
    assert ndcg_at_k({"q": ["b", "a"]}, qrels) < 1.0
    # A document returned twice (two of its chunks) counts once.
    assert ndcg_at_k({"q": ["a", "a", "b"]}, qrels) == pytest.approx(1.0)


def test_recall() -> None:
    qrels = {"q1": {"a": 1, "b": 1}, "q2": {"c": 1}, "q3": {"x": 0}}
    run = {"q1": ["a", "z"], "q2": []}
    assert recall_at_k(run, qrels, 100) == pytest.approx((0.5 + 0.0) / 2)  # q3 has no relevant
    assert recall_at_k({"q1": ["z", "a", "b"]}, {"q1": {"a": 1, "b": 1}}, 2) == pytest.approx(0.5)


@pytest.mark.parametrize("layout", ["beir", "flat"])
def test_load_beir(tmp_path: Path, layout: str) -> None:
    (tmp_path / "corpus.jsonl").write_text(
        json.dumps({"_id": "d1", "title": "T", "text": "body", "metadata": {}}) + "\n\n"
    )
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "question"}) + "\n")
    qrels = "query-id\tcorpus-id\tscore\nq1\td1\t1\n"
    if layout == "beir":
        (tmp_path / "qrels").mkdir()
        (tmp_path / "qrels" / "test.tsv").write_text(qrels)
    else:
        (tmp_path / "qrels_test.tsv").write_text(qrels)
    data = load_beir(tmp_path)
    assert data.corpus["d1"].title == "T" and data.corpus["d1"].text == "body"
    assert data.queries == {"q1": "question"}
    assert data.qrels == {"test": {"q1": {"d1": 1}}}
