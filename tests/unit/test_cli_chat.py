"""`botgpt chat`: a terminal conversation through the real chat turn, stored like any other."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from botgpt import cli
from botgpt.config import Settings
from botgpt.conversations.models import Conversation, Message
from botgpt.db import make_engine


def test_chat_streams_replies_and_stores_the_turns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOTGPT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BOTGPT_LLM_PROVIDER", "fake")
    monkeypatch.setenv("BOTGPT_LLM_TITLES", "false")
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\nand again\n/new\nsecond one\n"))
    with pytest.raises(SystemExit) as done:
        cli.main(["chat"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "bot> You said: hello" in out
    assert "bot> You said: and again" in out
    assert "(new conversation)" in out

    async def counts() -> tuple[int, int]:
        engine = make_engine(Settings(_env_file=None).effective_database_url)  # type: ignore[call-arg]
        async with engine.connect() as conn:
            conversations = (
                await conn.execute(select(func.count()).select_from(Conversation))
            ).scalar()
            messages = (await conn.execute(select(func.count()).select_from(Message))).scalar()
        await engine.dispose()
        return int(conversations or 0), int(messages or 0)

    assert asyncio.run(counts()) == (2, 6)  # two conversations, three answered turns


def test_chat_as_an_unknown_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOTGPT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BOTGPT_LLM_PROVIDER", "fake")
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n"))
    with pytest.raises(SystemExit) as done:
        cli.main(["chat", "--user", "nobody@example.com"])
    assert done.value.code == 2
    assert "No user" in capsys.readouterr().err
