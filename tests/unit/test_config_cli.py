"""Settings refuse unsafe values and name the variable to fix; the CLI reports it cleanly."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from botgpt import cli
from botgpt.config import Settings


def test_weak_jwt_secret_refused() -> None:
    with pytest.raises(ValidationError, match="BOTGPT_JWT_SECRET"):
        Settings(_env_file=None, jwt_secret="changeme")  # type: ignore[call-arg]


def test_production_requires_jwt_secret() -> None:
    with pytest.raises(ValidationError, match="BOTGPT_JWT_SECRET must be set in production"):
        Settings(_env_file=None, environment="production")  # type: ignore[call-arg]


def test_database_url_scheme_checked_and_postgres_normalised() -> None:
    with pytest.raises(ValidationError, match="BOTGPT_DATABASE_URL"):
        Settings(_env_file=None, database_url="mysql://x")  # type: ignore[call-arg]
    s = Settings(_env_file=None, database_url="postgresql://u@h/db")  # type: ignore[call-arg]
    assert s.effective_database_url == "postgresql+asyncpg://u@h/db"


def test_cli_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOTGPT_PORT", "not-a-port")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["migrate"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "BOTGPT_PORT" in err and "Traceback" not in err


def test_jwt_secret_generated_once_and_kept(tmp_path: object) -> None:
    s = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    first = s.jwt_key()
    assert len(first) >= 48
    assert Settings(_env_file=None, data_dir=tmp_path).jwt_key() == first  # type: ignore[call-arg]
