"""The whole app with BOTGPT_VECTOR_STORE=qdrant (embedded, in memory) on SQLite and PostgreSQL:
upload -> ready -> vector and grounded search from Qdrant; deletes and erasure reach Qdrant;
the start-up sync gives rows without a point one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from qdrant_client import models
from sqlalchemy import text

from botgpt import migrate
from botgpt.config import Settings
from botgpt.documents.evaluation import evaluate_retrieval
from botgpt.llm.fake import FakeProvider
from botgpt.main import create_app
from botgpt.retrieval.qdrant_store import QdrantVectors
from tests.conftest import BACKENDS, AppCtx, UserFactory, app_settings, backend_database
from tests.documents.conftest import Docs, write_beir
from tests.documents.test_grounded import POLICY, cite_passage


@pytest.fixture(scope="module", params=BACKENDS)
async def qdrant_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AppCtx]:
    """The app on one backend with its vectors in an in-memory Qdrant, jobs running."""
    backend: str = request.param
    data_dir = tmp_path_factory.mktemp(f"qdrant-{backend}")
    async with backend_database(backend, data_dir) as url:
        settings = app_settings(
            data_dir,
            url,
            grounded_support_policy="off",
            rate_limit_chat="",
            vector_store="qdrant",
            qdrant_url=":memory:",
        )
        fake = FakeProvider()
        app = create_app(settings, provider=fake, run_migrations=False)
        container = app.state.container
        await migrate.upgrade(container.engine)
        await container.docs.jobs.start()
        yield AppCtx(app, fake, settings, backend)
        await container.docs.jobs.join()
        await container.close()


@pytest.fixture
async def client(qdrant_app: AppCtx) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=qdrant_app.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture
def docs(client: httpx.AsyncClient, qdrant_app: AppCtx) -> Docs:
    return Docs(client, qdrant_app)


@pytest.fixture
def vectors(qdrant_app: AppCtx) -> QdrantVectors:
    found = qdrant_app.app.state.container.docs.indexes.vectors
    assert isinstance(found, QdrantVectors)
    return found


async def points(vectors: QdrantVectors, key: str, value: str) -> int:
    flt = models.Filter(must=[models.FieldCondition(key=key, match=models.MatchValue(value=value))])
    return (await vectors.client.count(vectors.collection, count_filter=flt)).count


async def test_upload_ready_search_and_grounded_answer_through_qdrant(
    qdrant_app: AppCtx, client: httpx.AsyncClient, docs: Docs, vectors: QdrantVectors
) -> None:
    users = UserFactory(client)
    owner, other = await users.create(), await users.create()
    doc = await docs.ingest(owner, "policy.md", POLICY.encode(), "text/markdown")
    assert doc["status"] == "ready" and doc["chunk_count"] > 0
    assert await points(vectors, "document_id", doc["id"]) == doc["chunk_count"]
    assert await points(vectors, "owner_id", owner.id) == doc["chunk_count"]
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["qdrant"] == "ok"

    r = await client.post(
        "/api/v1/search",
        json={"query": "how long does a refund take to arrive", "k": 3, "mode": "vector"},
        headers=owner.headers,
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert results and {p["document_id"] for p in results} == {doc["id"]}
    assert "refund" in results[0]["text"].lower()
    # The other user's vector search never sees the owner's chunks.
    r = await client.post(
        "/api/v1/search",
        json={"query": "how long does a refund take to arrive", "mode": "vector"},
        headers=other.headers,
    )
    assert r.status_code == 200 and r.json()["results"] == []

    fake: FakeProvider = qdrant_app.fake
    fake.enqueue(cite_passage("full refund within 30 days", "A full refund within 30 days [{n}]."))
    r = await client.post(
        "/api/v1/conversations",
        json={
            "first_message": "What is your refund policy?",
            "mode": "grounded",
            "document_ids": [doc["id"]],
        },
        headers=owner.headers,
    )
    assert r.status_code == 201, r.text
    cites = r.json()["assistant_message"]["citations"]
    assert len(cites) == 1 and cites[0]["document_id"] == doc["id"]
    assert "full refund within 30 days" in cites[0]["snippet"]

    r = await client.delete(f"/api/v1/documents/{doc['id']}", headers=owner.headers)
    assert r.status_code == 204, r.text
    assert await points(vectors, "document_id", doc["id"]) == 0


async def test_erasure_removes_the_owners_points(
    client: httpx.AsyncClient, docs: Docs, vectors: QdrantVectors
) -> None:
    users = UserFactory(client)
    gone, stays = await users.create(), await users.create()
    await docs.ingest(gone, "a.txt", b"Glaciers carve valleys over thousands of years.")
    await docs.ingest(gone, "b.txt", b"Volcanic soil is rich in minerals.")
    kept = await docs.ingest(stays, "c.txt", b"Glaciers carve valleys over thousands of years.")
    assert await points(vectors, "owner_id", gone.id) == 2
    r = await client.delete("/api/v1/users/me", headers=gone.headers)
    assert r.status_code == 204, r.text
    assert await points(vectors, "owner_id", gone.id) == 0
    assert await points(vectors, "document_id", kept["id"]) == kept["chunk_count"]


async def test_sync_gives_rows_without_points_their_vectors(
    qdrant_app: AppCtx, client: httpx.AsyncClient, docs: Docs, vectors: QdrantVectors
) -> None:
    """What moving an existing installation to Qdrant relies on (and a lost point too)."""
    owner = await UserFactory(client).create()
    doc = await docs.ingest(owner, "d.txt", b"The lighthouse keeper logs every passing ship.")
    selector = models.Filter(
        must=[models.FieldCondition(key="document_id", match=models.MatchValue(value=doc["id"]))]
    )
    await vectors.client.delete(vectors.collection, points_selector=selector)
    search = {"query": "who records the ships", "mode": "vector", "document_ids": [doc["id"]]}
    r = await client.post("/api/v1/search", json=search, headers=owner.headers)
    assert r.json()["results"] == []
    report = await qdrant_app.app.state.container.docs.vector_sync.run()
    assert report.points_added == doc["chunk_count"]
    r = await client.post("/api/v1/search", json=search, headers=owner.headers)
    assert [p["document_id"] for p in r.json()["results"]] == [doc["id"]]
    assert (await qdrant_app.app.state.container.docs.vector_sync.run()).points_added == 0


async def test_retrieval_evaluation_runs_on_qdrant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`botgpt eval retrieval` measures the configured store: its vector search is Qdrant's."""
    beir = write_beir(tmp_path / "beir", [("q1", "what pulls the sea twice a day")], {"q1": "d2"})
    searches: list[int] = []
    original = QdrantVectors.search

    async def counted(self: QdrantVectors, *args: Any, **kwargs: Any) -> list[tuple[str, float]]:
        searches.append(1)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(QdrantVectors, "search", counted)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=tmp_path,
        vector_store="qdrant",
        qdrant_path=tmp_path / "server-owned",  # the evaluation must not open it
    )
    report = await evaluate_retrieval(
        settings,
        str(beir),
        mode="vector",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'eval.db'}",
    )
    assert report.ndcg_at_10 == 1.0 and searches
    assert not (tmp_path / "server-owned").exists()


async def test_a_resumed_ingestion_leaves_only_the_new_runs_points(
    qdrant_app: AppCtx, client: httpx.AsyncClient, docs: Docs, vectors: QdrantVectors
) -> None:
    """A crash mid-job resumes from the start: the first run's points go with its rows."""
    owner = await UserFactory(client).create()
    doc = await docs.ingest(owner, "e.md", POLICY.encode(), "text/markdown")
    first = await chunk_ids(docs, doc["id"])
    await docs.execute("UPDATE documents SET status = 'embedding' WHERE id = :d", d=doc["id"])
    assert doc["id"] in await docs.ingestor.resume_interrupted()
    again = await docs.wait(owner, doc["id"])
    assert again["status"] == "ready"
    second = await chunk_ids(docs, doc["id"])
    assert second and not second & first
    assert await vectors.missing(sorted(first)) == first
    assert await vectors.missing(sorted(second)) == set()
    assert await points(vectors, "document_id", doc["id"]) == len(second)


async def chunk_ids(docs: Docs, document_id: str) -> set[str]:
    async with docs.ctx.app.state.container.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT id FROM chunks WHERE document_id = :d"), {"d": document_id}
        )
        return {row[0] for row in rows}
