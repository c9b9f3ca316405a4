"""Everything the service writes to its data folder is its owner's only (0600 / 0700)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx

from botgpt import migrate
from botgpt.config import Settings
from botgpt.llm.fake import FakeProvider
from botgpt.main import create_app


async def test_database_uploads_and_secret_are_private_whatever_the_umask(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"  # nothing exists yet: every level is created
    previous = os.umask(0o022)  # the usual umask, which would leave files world-readable
    try:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            environment="test",
            data_dir=data_dir,
            llm_provider="fake",
            embedding_provider="hash",
            rate_limit_auth="",
        )
        assert settings.jwt_secret is None  # generated into the data folder
        app = create_app(settings, provider=FakeProvider(), run_migrations=False)
        engine = app.state.container.engine
        await migrate.upgrade(engine)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.post(
                "/api/v1/auth/register",
                json={"email": "modes@example.com", "password": "correct horse battery"},
            )
            assert r.status_code == 201, r.text
            r = await client.post(
                "/api/v1/auth/login",
                json={"email": "modes@example.com", "password": "correct horse battery"},
            )
            headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            r = await client.post(
                "/api/v1/documents",
                files={"file": ("notes.txt", b"Private notes.", "text/plain")},
                headers=headers,
            )
            assert r.status_code == 201, r.text
        await engine.dispose()
    finally:
        os.umask(previous)

    names = {p.name for p in data_dir.rglob("*")}
    assert {"botgpt.db", "jwt_secret", "uploads"} <= names, names
    assert any(p.is_file() for p in (data_dir / "uploads").rglob("*"))
    loose = []
    for path in [data_dir, data_dir.parent, *data_dir.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        wanted = 0o700 if path.is_dir() else 0o600
        if mode != wanted:
            loose.append(f"{path.relative_to(tmp_path)} {oct(mode)}")
    assert not loose, loose
