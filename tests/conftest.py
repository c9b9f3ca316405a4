"""Shared fixtures: the app on SQLite and on PostgreSQL, clients, factories, the fake model."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from botgpt import migrate
from botgpt.config import Settings
from botgpt.llm.fake import FakeProvider
from botgpt.main import create_app

PG_URL = os.environ.get(
    "BOTGPT_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:55432/botgpt_test"
)
BACKENDS = [b for b in os.environ.get("BOTGPT_TEST_BACKENDS", "sqlite,postgres").split(",") if b]


@dataclass
class AppCtx:
    """A running app with its fake provider."""

    app: FastAPI
    fake: FakeProvider
    settings: Settings
    backend: str


async def _fresh_pg_database() -> tuple[str, str]:
    """Create a throwaway database (with pgvector when available); return (url, name)."""
    name = f"botgpt_t_{uuid.uuid4().hex[:10]}"
    raw = PG_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(raw)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = PG_URL.rpartition("/")
    return f"{base}/{name}", name


async def _drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def app_settings(data_dir: Path, url: str, **overrides: Any) -> Settings:
    """Settings of an app under test: fake model, no titles, plain logs; ``overrides`` win."""
    values: dict[str, Any] = {
        "environment": "test",
        "data_dir": data_dir,
        "database_url": url,
        "jwt_secret": secrets.token_urlsafe(40),
        "llm_provider": "fake",
        "llm_titles": False,
        "log_json": False,
        "rate_limit_auth": "",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def backend_database(backend: str, data_dir: Path) -> AsyncIterator[str]:
    """The URL of an empty database on ``backend``: a file in ``data_dir`` or a throwaway
    PostgreSQL database, dropped on exit."""
    if backend != "postgres":
        yield f"sqlite+aiosqlite:///{data_dir / 'test.db'}"
        return
    url, name = await _fresh_pg_database()
    try:
        yield url
    finally:
        await _drop_pg_database(name)


@pytest.fixture(scope="session", params=BACKENDS)
async def app_ctx(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AppCtx]:
    """The app on one backend, migrated, with a fake provider (one per backend per session)."""
    backend: str = request.param
    data_dir: Path = tmp_path_factory.mktemp(f"data-{backend}")
    async with backend_database(backend, data_dir) as url:
        settings = app_settings(
            data_dir,
            url,
            grounded_support_policy="off",  # the support check has tests of its own
            llm_breaker_failures=1000,  # one app serves the whole session: keep it closed
            llm_retry_base_seconds=0.0,
            # Every test registers from the same address; tests/api/test_rate_limits.py swaps
            # in tight limits where it needs them.
            rate_limit_chat="100000/minute",
        )
        fake = FakeProvider()
        app = create_app(settings, provider=fake, run_migrations=False)
        await migrate.upgrade(app.state.container.engine)
        yield AppCtx(app, fake, settings, backend)
        await app.state.container.engine.dispose()


@pytest.fixture
async def ctx(app_ctx: AppCtx) -> AsyncIterator[AppCtx]:
    """The per-test view of the app: the fake model's script is reset."""
    app_ctx.fake.queue.clear()
    app_ctx.fake.requests.clear()
    app_ctx.fake.default_delay = 0.0
    yield app_ctx


@pytest.fixture
def fake(ctx: AppCtx) -> FakeProvider:
    """The scripted model behind the app."""
    return ctx.fake


@pytest.fixture
async def client(ctx: AppCtx) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process."""
    transport = httpx.ASGITransport(app=ctx.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@dataclass
class AuthedUser:
    """A registered user with a logged-in session."""

    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        """Authorization headers for this user."""
        return {"Authorization": f"Bearer {self.access_token}"}


class UserFactory:
    """Registers and logs in fresh users through the API."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def create(self, password: str = "correct horse battery") -> AuthedUser:
        """A new user with a login session."""
        email = f"user-{uuid.uuid4().hex[:12]}@example.com"
        r = await self.client.post(
            "/api/v1/auth/register", json={"email": email, "password": password}
        )
        assert r.status_code == 201, r.text
        user_id = r.json()["id"]
        r = await self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )
        assert r.status_code == 200, r.text
        tokens = r.json()
        return AuthedUser(user_id, email, password, tokens["access_token"], tokens["refresh_token"])


@pytest.fixture
def users(client: httpx.AsyncClient) -> UserFactory:
    """Factory of registered users."""
    return UserFactory(client)


@pytest.fixture
async def user(users: UserFactory) -> AuthedUser:
    """One registered, logged-in user."""
    return await users.create()


@pytest.fixture
async def admin_key(ctx: AppCtx) -> str:
    """A service API key of an admin user (may act for other users)."""
    from botgpt.auth.models import User
    from botgpt.auth.service import Principal

    c = ctx.app.state.container
    async with c.sessions() as db:
        admin = User(email=f"admin-{uuid.uuid4().hex[:8]}@example.com", is_admin=True)
        db.add(admin)
        await db.commit()
        principal = Principal(admin.id, True, True, "jwt")
        _, key = await c.auth.create_api_key(db, principal, "service", True)
    return key


class ConversationFactory:
    """Creates conversations through the API."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def create(self, owner: AuthedUser, text: str = "Hello there") -> dict[str, object]:
        """A conversation of `owner` with one answered turn."""
        r = await self.client.post(
            "/api/v1/conversations", json={"first_message": text}, headers=owner.headers
        )
        assert r.status_code == 201, r.text
        body: dict[str, object] = r.json()
        return body


@pytest.fixture
def conversations(client: httpx.AsyncClient) -> ConversationFactory:
    """Factory of conversations."""
    return ConversationFactory(client)


@contextlib.asynccontextmanager
async def serve_app(app: FastAPI) -> AsyncIterator[int]:
    """`app` served by a real uvicorn server on 127.0.0.1 (lifespan off); yields its port."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
