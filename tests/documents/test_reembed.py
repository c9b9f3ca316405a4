"""A changed embedding model re-embeds documents in the background; they stay searchable."""

from __future__ import annotations

import numpy as np

from botgpt.documents.reembed import Reembedder
from tests.conftest import AuthedUser
from tests.documents.conftest import Docs

TEXT = (
    "The lighthouse keeper lit the lamp every evening at dusk.\n\n"
    "Bread is baked from flour, water, salt and yeast.\n\n"
    "Volcanoes erupt when magma rises through the crust."
)


async def _vector_top(docs: Docs, user: AuthedUser, query: str) -> str:
    r = await docs.client.post(
        "/api/v1/search", json={"query": query, "mode": "vector", "k": 3}, headers=user.headers
    )
    assert r.status_code == 200, r.text
    top: str = r.json()["results"][0]["text"]
    return top


async def test_model_change_reembeds_in_place(docs: Docs, user: AuthedUser) -> None:
    doc = await docs.ingest(user, "facts.txt", TEXT.encode())
    assert "magma" in await _vector_top(docs, user, "how do volcanoes erupt")
    reembedder: Reembedder = docs.ctx.app.state.container.docs.reembedder
    # Pretend the document was indexed by an older model: other model name, other vectors.
    rng = np.random.default_rng(7)
    async with docs.ctx.app.state.container.engine.begin() as conn:
        index = reembedder.ingestor.index(conn)
        chunks = await index.chunk_texts(doc["id"])
        noise = [(cid, rng.standard_normal(index.dimension)) for cid, _, _ in chunks]
        await index.replace_embeddings(noise, embedding_model="old-model")
    await docs.execute(
        "UPDATE documents SET embedding_model = 'old-model' WHERE id = :id", id=doc["id"]
    )

    queued = await reembedder.queue_stale()
    assert doc["id"] in queued
    # Still ready and searchable (keyword search is untouched) while re-embedding is queued.
    r = await docs.client.get(f"/api/v1/documents/{doc['id']}", headers=user.headers)
    assert r.json()["status"] == "ready"
    r = await docs.client.post(
        "/api/v1/search", json={"query": "volcanoes magma", "mode": "keyword"}, headers=user.headers
    )
    assert "magma" in r.json()["results"][0]["text"]

    await docs.jobs.join()
    r = await docs.client.get(f"/api/v1/documents/{doc['id']}", headers=user.headers)
    assert r.json()["embedding_model"] == reembedder.model
    models = await docs.scalar(
        "SELECT COUNT(DISTINCT embedding_model) FROM chunks WHERE document_id = :id", id=doc["id"]
    )
    assert models == 1
    assert "magma" in await _vector_top(docs, user, "how do volcanoes erupt")
    assert (await docs.index_counts())["chunks"] >= len(chunks)
