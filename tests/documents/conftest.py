"""Fixtures for documents: the job queue running, upload and wait helpers, direct DB access."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from botgpt.documents.ingest import Ingestor
from botgpt.documents.scope import DocumentScope
from botgpt.documents.service import DocumentService
from botgpt.jobs.queue import InProcessJobQueue
from tests.conftest import AppCtx, AuthedUser

TERMINAL = ("ready", "failed")


@pytest.fixture(scope="session")
async def jobs_running(app_ctx: AppCtx) -> AsyncIterator[None]:
    """The app's lifespan is not run by the test client: start the job queue here."""
    jobs: InProcessJobQueue = app_ctx.app.state.container.docs.jobs
    await jobs.start()
    yield
    await jobs.join()
    await jobs.stop()


class Docs:
    """Upload, poll and inspect documents of the app under test."""

    def __init__(self, client: httpx.AsyncClient, ctx: AppCtx) -> None:
        self.client = client
        self.ctx = ctx
        services = ctx.app.state.container
        self.service: DocumentService = services.docs.documents
        self.ingestor: Ingestor = services.docs.ingestor
        self.scope: DocumentScope = services.docs.scope
        self.jobs: InProcessJobQueue = services.docs.jobs

    @property
    def uploads(self) -> Path:
        """The blob folder."""
        return self.ctx.settings.data_dir / "uploads"

    @property
    def spool(self) -> Path:
        """The folder uploads are streamed to before they are stored."""
        return self.service.spool_dir

    def upload_files(self) -> set[Path]:
        """Every file under the blob and spool folders."""
        return {p for root in (self.uploads, self.spool) if root.exists() for p in root.rglob("*")}

    async def upload(
        self,
        user: AuthedUser | dict[str, str],
        filename: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        form: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST a multipart upload."""
        headers = user.headers if isinstance(user, AuthedUser) else user
        return await self.client.post(
            "/api/v1/documents",
            files={"file": (filename, data, content_type)},
            data=form or {},
            headers=headers,
        )

    async def wait(
        self,
        user: AuthedUser | dict[str, str],
        document_id: str,
        seconds: float = 60.0,
        user_id: str | None = None,
    ) -> dict[str, Any]:
        """Poll GET until the document is ready or failed."""
        headers = user.headers if isinstance(user, AuthedUser) else user
        params = {"user_id": user_id} if user_id else {}
        deadline = time.monotonic() + seconds
        while True:
            r = await self.client.get(
                f"/api/v1/documents/{document_id}", headers=headers, params=params
            )
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            if body["status"] in TERMINAL:
                return body
            assert time.monotonic() < deadline, f"still {body['status']} after {seconds}s"
            await asyncio.sleep(0.05)

    async def ingest(
        self, user: AuthedUser, filename: str, data: bytes, content_type: str = "text/plain"
    ) -> dict[str, Any]:
        """Upload and wait until ingestion finished."""
        r = await self.upload(user, filename, data, content_type)
        assert r.status_code == 201, r.text
        return await self.wait(user, r.json()["id"])

    async def scalar(self, sql: str, **params: Any) -> Any:
        """One value from a raw SQL query."""
        async with self.ctx.app.state.container.engine.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar()

    async def execute(self, sql: str, **params: Any) -> None:
        """Run a raw SQL statement and commit."""
        async with self.ctx.app.state.container.engine.begin() as conn:
            await conn.execute(text(sql), params)

    async def index_counts(self) -> dict[str, int]:
        """Rows of every chunk-index table."""
        tables = ["chunks"]
        if self.ctx.backend == "sqlite":
            tables += ["chunks_vec", "chunks_fts"]
        return {t: int(await self.scalar(f"SELECT COUNT(*) FROM {t}")) for t in tables}


@pytest.fixture
def docs(client: httpx.AsyncClient, ctx: AppCtx, jobs_running: None) -> Docs:
    """Document helpers bound to the app under test."""
    return Docs(client, ctx)


BEIR_CORPUS = [
    ("d1", "Volcanoes", "Magma rises through the crust and erupts as lava."),
    ("d2", "Tides", "The moon's gravity pulls the oceans and causes tides."),
    ("d3", "Bread", "Yeast ferments sugars in dough, producing carbon dioxide."),
]


def write_beir(folder: Path, queries: list[tuple[str, str]], relevant: dict[str, str]) -> Path:
    """A three-document data set in BEIR's layout (corpus, queries, test qrels) in ``folder``.

    ``relevant`` maps each query id to the id of its one relevant document.
    """
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": i, "title": t, "text": x}) for i, t, x in BEIR_CORPUS)
    )
    (folder / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": i, "text": t}) for i, t in queries)
    )
    qrels = "".join(f"{q}\t{d}\t1\n" for q, d in relevant.items())
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    return folder
