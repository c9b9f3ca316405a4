"""Found by schemathesis: a query vector without direction must not break vector search."""

from __future__ import annotations

import numpy as np
from sqlalchemy.ext.asyncio import AsyncConnection

from botgpt.ids import new_id
from botgpt.retrieval.stores import chunk_index_for
from tests.retrieval.test_stores import PASSAGES, add_document


async def test_zero_or_nan_query_vector_finds_nothing_instead_of_failing(
    db: AsyncConnection,
) -> None:
    # The hash embedder gives "!!!" (no word) a zero vector; its cosine distances are NaN.
    index = chunk_index_for(db)
    owner = new_id()
    await add_document(index, owner, PASSAGES)
    zero = np.zeros(index.dimension, dtype=np.float32)
    assert await index.vector_search(zero, owner, None, 5) == []
    assert await index.vector_search(np.full_like(zero, np.nan), owner, None, 5) == []
    unit = zero.copy()
    unit[0] = 1.0
    assert len(await index.vector_search(unit, owner, None, 5)) == len(PASSAGES)
