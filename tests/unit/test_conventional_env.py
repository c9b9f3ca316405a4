"""The conventional environment names (DATABASE_URL, REDIS_URL, provider keys) and their log."""

from __future__ import annotations

import pytest

from botgpt.config import GROQ_BASE_URL, Settings, setting_sources
from botgpt.llm.factory import build_base_provider


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GROQ_API_KEY",
        "BOTGPT_DATABASE_URL",
        "BOTGPT_REDIS_URL",
        "BOTGPT_LLM_API_KEY",
        "BOTGPT_LLM_PROVIDER",
        "BOTGPT_LLM_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)


def _settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_platform_database_url_becomes_the_async_driver_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://app:pw@db:5432/bots?sslmode=require")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/2")
    s = _settings()
    assert s.effective_database_url == "postgresql+asyncpg://app:pw@db:5432/bots?ssl=require"
    assert s.redis_url == "redis://cache:6379/2"
    sources = setting_sources(s)
    assert sources["database_url"] == "DATABASE_URL" and sources["redis_url"] == "REDIS_URL"
    # The log names sources only, never values.
    assert "pw" not in repr(sources) and "cache" not in repr(sources)


def test_botgpt_name_wins_over_the_conventional_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://other@h/x")
    monkeypatch.setenv("BOTGPT_DATABASE_URL", "sqlite+aiosqlite:////tmp/mine.db")
    s = _settings()
    assert s.database_url == "sqlite+aiosqlite:////tmp/mine.db"
    assert setting_sources(s)["database_url"] == "BOTGPT_DATABASE_URL"


def test_bad_conventional_database_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://x@h/db")
    with pytest.raises(ValueError, match="postgres://"):
        _settings()


@pytest.mark.parametrize(
    ("provider", "variable", "base_url"),
    [
        ("openai", "OPENAI_API_KEY", "https://api.openai.com/v1"),
        ("anthropic", "ANTHROPIC_API_KEY", "https://api.anthropic.com"),
        ("groq", "GROQ_API_KEY", GROQ_BASE_URL),
    ],
)
def test_provider_key_from_its_conventional_variable(
    monkeypatch: pytest.MonkeyPatch, provider: str, variable: str, base_url: str
) -> None:
    monkeypatch.setenv("BOTGPT_LLM_PROVIDER", provider)
    monkeypatch.setenv(variable, "sk-conventional-1234")
    s = _settings()
    assert s.llm_api_key is not None
    assert s.llm_api_key.get_secret_value() == "sk-conventional-1234"
    assert setting_sources(s)["llm_api_key"] == variable
    raw = build_base_provider(s)
    assert getattr(raw, "base_url", "").rstrip("/") == base_url
    if provider == "groq":
        assert raw.name == "groq" and s.llm_model == "llama-3.1-8b-instant"


def test_explicit_key_wins_and_other_providers_keys_are_not_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOTGPT_LLM_PROVIDER", "openai")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-wrong")
    assert _settings().llm_api_key is None
    monkeypatch.setenv("OPENAI_API_KEY", "sk-conventional")
    monkeypatch.setenv("BOTGPT_LLM_API_KEY", "sk-explicit")
    key = _settings().llm_api_key
    assert key is not None and key.get_secret_value() == "sk-explicit"


def test_anthropic_base_url_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTGPT_LLM_PROVIDER", "anthropic")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant")
    monkeypatch.setenv("BOTGPT_LLM_BASE_URL", "https://gateway.example.com/anthropic")
    raw = build_base_provider(_settings())
    assert getattr(raw, "base_url", "").rstrip("/") == "https://gateway.example.com/anthropic"


async def test_start_logs_sources_not_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    from pathlib import Path

    from botgpt.main import create_app

    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{Path(str(tmp_path)) / 'x.db'}")
    monkeypatch.setenv("BOTGPT_LLM_PROVIDER", "fake")
    monkeypatch.setenv("BOTGPT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-logged-9876")
    app = create_app(_settings())
    with caplog.at_level(logging.INFO, logger="botgpt"):
        async with app.router.lifespan_context(app):
            pass
    record = next(r for r in caplog.records if r.getMessage() == "settings loaded")
    sources = record.__dict__["sources"]
    assert sources["database_url"] == "DATABASE_URL"
    assert sources["llm_provider"] == "BOTGPT_LLM_PROVIDER"
    assert "sk-never-logged" not in caplog.text and "x.db" not in repr(sources)
