"""`botgpt serve --workers N`: several processes on PostgreSQL + Redis; SQLite refuses."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from botgpt import cli
from tests.conftest import _drop_pg_database, _fresh_pg_database

REDIS_URL = os.environ.get("BOTGPT_TEST_REDIS_URL", "")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No BOTGPT_* settings from the outside: the data folder is a fresh one."""
    for name in list(os.environ):
        if name.startswith("BOTGPT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env is read
    monkeypatch.setenv("BOTGPT_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_sqlite_refuses_more_than_one_process(
    clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", "--workers", "2"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--workers 2 needs PostgreSQL" in err and "SQLite" in err
    assert not (clean_env / "botgpt.db").exists()  # refused before migrating anything


def test_workers_from_the_environment_are_checked_too(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOTGPT_WORKERS", "3")
    monkeypatch.setenv("BOTGPT_DATABASE_URL", "postgresql+asyncpg://u@127.0.0.1:1/none")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve"])
    assert exit_info.value.code == 2
    assert "--workers 3 needs BOTGPT_REDIS_URL" in capsys.readouterr().err


def test_zero_workers_refused(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["serve", "--workers", "0"])
    assert "at least 1" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                cmdline = (entry / "cmdline").read_bytes()
                if b"resource_tracker" not in cmdline:
                    found.append(int(entry.name))
    return found


@pytest.fixture
def pg_url() -> Iterator[str]:
    url, name = asyncio.run(_fresh_pg_database())
    yield url
    asyncio.run(_drop_pg_database(name))


@pytest.mark.skipif(not REDIS_URL, reason="BOTGPT_TEST_REDIS_URL is not set")
def test_two_processes_serve_one_postgres_and_redis(pg_url: str, tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BOTGPT_")},
        "BOTGPT_DATABASE_URL": pg_url,
        "BOTGPT_REDIS_URL": REDIS_URL,
        "BOTGPT_DATA_DIR": str(tmp_path),
        "BOTGPT_LLM_PROVIDER": "fake",
        "BOTGPT_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "botgpt.cli", "serve", "--workers", "2", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        key = ""
        assert proc.stdout is not None
        for line in proc.stdout:
            if "Admin API key" in line:
                key = line.rsplit(" ", 1)[1].strip()
            if "starting at" in line:
                break
        assert key, "the first start prints the admin key"
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "not ready within 90 s"
            time.sleep(0.3)
        assert len(_children(proc.pid)) == 2, "two worker processes serve the port"
        auth = {"Authorization": f"Bearer {key}"}
        # Fresh connections land on either process; each sees what the other wrote.
        ids = []
        for n in range(6):
            r = httpx.post(
                f"{base}/api/v1/conversations",
                json={"first_message": f"hello {n}"},
                headers=auth,
                timeout=20,
            )
            assert r.status_code == 201, r.text
            assert r.json()["assistant_message"]["content"] == f"You said: hello {n}"
            ids.append(r.json()["conversation_id"])
        for cid in ids:
            r = httpx.get(f"{base}/api/v1/conversations/{cid}", headers=auth, timeout=20)
            assert r.status_code == 200 and len(r.json()["messages"]) == 2
        # Whichever process answers /metrics, it counts the turns of both.
        for _ in range(4):
            text = httpx.get(f"{base}/metrics", timeout=10).text
            turns = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("botgpt_chat_turns_total{")
            )
            assert turns == 6, text
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0


def test_metrics_of_several_processes_are_summed(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    record = (
        "from botgpt.observability import metrics; "
        "metrics.record_turn('fake', 'm', 'complete', 10, 5, None)"
    )
    for _ in range(2):  # two processes, one turn each
        subprocess.run([sys.executable, "-c", record], env=env, check=True)
    show = (
        "import sys; from botgpt.observability import metrics; "
        "sys.stdout.write(metrics.exposition().decode())"
    )
    text = subprocess.run(
        [sys.executable, "-c", show], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert 'botgpt_chat_turns_total{model="m",provider="fake",status="complete"} 2.0' in text
    assert 'botgpt_llm_tokens_total{kind="prompt",model="m",provider="fake"} 20.0' in text
