"""`botgpt users`: create, list and key issuing against a real (temporary) SQLite database."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx
import pytest

from botgpt import cli
from botgpt.config import Settings
from botgpt.main import create_app


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BOTGPT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BOTGPT_LLM_PROVIDER", "fake")
    return tmp_path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        cli.main(argv)
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


def test_create_list_and_issue_a_key_that_works(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    code, out, _ = run(
        ["users", "create", "Ops@Example.com", "--admin", "--password-stdin"], capsys
    )
    assert code == 0 and "created ops@example.com (admin)" in out
    code, out, _ = run(["users", "list"], capsys)
    assert code == 0 and "ops@example.com" in out
    code, out, _ = run(["users", "key", "ops@example.com", "--service", "--name", "ci"], capsys)
    assert code == 0
    key = out.strip().rsplit(" ", 1)[1]
    assert key.startswith("bgpt_")

    # The key authenticates against the server on the same database.
    async def me() -> httpx.Response:
        app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.get(
                    "/api/v1/users/me", headers={"Authorization": f"Bearer {key}"}
                )

    r = asyncio.run(me())
    assert r.status_code == 200 and r.json()["email"] == "ops@example.com"


def test_bad_input_is_reported_without_a_traceback(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    code, _, err = run(["users", "create", "someone@example.com", "--password-stdin"], capsys)
    assert code == 2 and "password" in err and "Traceback" not in err
    code, _, err = run(["users", "key", "nobody@example.com"], capsys)
    assert code == 2 and "No user" in err
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert run(["users", "create", "plain@example.com", "--password-stdin"], capsys)[0] == 0
    code, _, err = run(["users", "key", "plain@example.com", "--service"], capsys)
    assert code == 2 and "admin" in err
