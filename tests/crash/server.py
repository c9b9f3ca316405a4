"""A real `botgpt serve` process for crash tests: start, kill -9, start again on its data."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class ServerProcess:
    """`botgpt serve` in a subprocess on 127.0.0.1, its settings given as BOTGPT_ variables."""

    def __init__(self, data_dir: Path, database_url: str, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        # Nothing of the caller's BOTGPT_ settings (e.g. a Redis URL) leaks into the server.
        base = {k: v for k, v in os.environ.items() if not k.startswith("BOTGPT_")}
        self.env = {
            **base,
            "BOTGPT_DATA_DIR": str(data_dir),
            "BOTGPT_DATABASE_URL": database_url,
            "BOTGPT_JWT_SECRET": secrets.token_urlsafe(40),
            "BOTGPT_LOG_LEVEL": "WARNING",
            "BOTGPT_LLM_TITLES": "false",
            **env,
        }
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.admin_key = ""
        self.starts = 0

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.AsyncClient:
        """A client authenticated with the admin's service key."""
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {self.admin_key}"}, timeout=30
        )

    async def start(self) -> None:
        """Start the server (migrating and creating the admin at the first start)."""
        self.port = free_port()
        self.starts += 1
        await asyncio.to_thread(self._spawn)
        await asyncio.to_thread(self._read_banner)
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as probe:
            while time.monotonic() < deadline:
                try:
                    if (await probe.get("/health")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"the server did not start; see {self.data_dir}")

    def _spawn(self) -> None:
        with open(self.data_dir / f"server-{self.starts}.log", "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "botgpt.cli", "serve", "--port", str(self.port)],
                env={**self.env, "BOTGPT_PORT": str(self.port)},
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )

    def _read_banner(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            if "Admin API key" in line:
                self.admin_key = line.rsplit(" ", 1)[1].strip()
            if "starting at" in line:
                return
        raise RuntimeError(f"the server exited at start; see {self.data_dir}")

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        """Stop gracefully (SIGINT), or kill it if it does not stop."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
