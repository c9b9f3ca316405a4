"""SQLite keyword search leaves out query terms that most chunks contain, when rarer terms of
the query match: the stems are FTS5's own (a plural finds its singular's statistics)."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from botgpt.db import make_engine
from botgpt.retrieval.sqlite_store import SqliteChunkIndex
from botgpt.retrieval.stores import ChunkRecord, ddl_statements

OWNER = "owner-1"


def _texts() -> list[str]:
    # "patient" in all 40 chunks; "thalassemia" in 3 of them; "anemia" in 10.
    rows = [f"Patient record {i} about routine care." for i in range(40)]
    for i in range(3):
        rows[i] = f"Patient with thalassemia trait, record {i}."
    for i in range(30, 40):
        rows[i] = f"Patient record {i} with anemia."
    return rows


@pytest.fixture
async def index(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'terms.db'}")
    async with engine.begin() as conn:
        for statement in ddl_statements("sqlite", 8):
            await conn.execute(text(statement))
    async with engine.connect() as conn:
        store = SqliteChunkIndex(conn, dimension=8, common_term_share=0.5, common_term_rows=5)
        rng = np.random.default_rng(1)
        await store.add(
            [
                ChunkRecord(
                    id=str(uuid.uuid4()),
                    document_id="doc-1",
                    owner_id=OWNER,
                    ordinal=i,
                    text=body,
                    embedding=rng.normal(size=8).astype(np.float32),
                    char_start=0,
                    char_end=len(body),
                )
                for i, body in enumerate(_texts())
            ],
            embedding_model="test",
        )
        yield store
    await engine.dispose()


async def test_a_common_term_is_left_out_when_a_rare_one_matches(
    index: SqliteChunkIndex,
) -> None:
    # "patients" stems to "patient" (in every chunk): only the thalassemia chunks match.
    hits = await index.keyword_search("patients thalassemia", OWNER, None, 10)
    assert sorted(h.ordinal for h in hits) == [0, 1, 2]
    assert await index._without_common(["patients", "anemia", "thalassemia"]) == [
        "anemia",
        "thalassemia",
    ]


async def test_common_terms_stay_when_nothing_rarer_matches(index: SqliteChunkIndex) -> None:
    # Only common words, or a common word and one no chunk has: every term is kept.
    assert len(await index.keyword_search("patient", OWNER, None, 50)) == 40
    assert len(await index.keyword_search("patient zyzzyva", OWNER, None, 50)) == 40
    # Without the pruning every chunk matching any term is ranked.
    index.common_term_share = 1.0
    assert len(await index.keyword_search("patients thalassemia", OWNER, None, 50)) == 40
