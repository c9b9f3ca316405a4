"""A secrets scan over a representative run: no secret in any response or log line.

The app is configured with a known provider API key, fallback key, moderation key and JWT
secret, and talks to a real local OpenAI-compatible server. A flow that touches every area
(sign-up, sign-in, refresh, keys, chat JSON and SSE, a provider that fails and echoes the
key back, the OpenAI-compatible API, uploads, search, FAQs, webhooks, export, analytics,
metrics, bad credentials, logout, erasure) runs; then every response body and header and
every log line (JSON, with extras and tracebacks) is searched for the secrets and for every
password hash and token hash in the database.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from botgpt.config import Settings
from botgpt.main import create_app
from botgpt.observability.logging import JsonFormatter
from tests.conftest import BACKENDS, _drop_pg_database, _fresh_pg_database
from tests.fakes.openai_server import FakeOpenAIServer, Reply, openai_stream

PROVIDER_KEY = "sk-live-PROVIDERKEY" + secrets.token_hex(12)
FALLBACK_KEY = "sk-live-FALLBACKKEY" + secrets.token_hex(12)
MODERATION_KEY = "sk-live-MODERATIONKEY" + secrets.token_hex(12)
JWT_SECRET = "jwt-SECRET-" + secrets.token_hex(24)
PASSWORD = "Tr0ub4dor&3-" + secrets.token_hex(6)


class Recorder:
    """Every response of the run, as text (status line, headers, body)."""

    def __init__(self) -> None:
        self.responses: list[str] = []

    async def hook(self, response: httpx.Response) -> None:
        await response.aread()
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.responses.append(
            f"{response.request.method} {response.request.url} -> {response.status_code}\n"
            f"{headers}\n{response.text}"
        )


@pytest.fixture
async def provider() -> AsyncIterator[FakeOpenAIServer]:
    def answer(request: Any) -> Reply:
        if request.path.endswith("/moderations"):
            return Reply.json(200, {"results": [{"flagged": False, "categories": {}}]})
        body = request.json()
        if body.get("stream"):
            return Reply.sse(openai_stream(["All ", "good."], usage=(7, 2)))
        return Reply.json(
            200,
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": body.get("model", "m"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "All good."},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
            },
        )

    async with FakeOpenAIServer(default_reply=answer) as server:
        yield server


def _settings(data_dir: Path, url: str, base_url: str) -> Settings:
    fallback = {"provider": "openai", "base_url": base_url, "api_key": FALLBACK_KEY, "model": "f"}
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=data_dir,
        database_url=url,
        jwt_secret=JWT_SECRET,
        llm_provider="openai",
        llm_base_url=base_url,
        llm_api_key=PROVIDER_KEY,
        llm_model="gpt-test",
        llm_fallbacks=[fallback],
        llm_retry_attempts=1,
        llm_retry_base_seconds=0.0,
        llm_titles=False,
        moderation="openai",
        moderation_base_url=base_url,
        moderation_api_key=MODERATION_KEY,
        embedding_provider="hash",
        rate_limit_chat="",
        rate_limit_auth="",
    )


async def _flow(
    client: httpx.AsyncClient,
    server: FakeOpenAIServer,
    admin: str,
    snapshot: Callable[[], Awaitable[None]],
) -> None:
    """A representative run; each step must succeed (or fail as intended)."""
    creds = {"email": "scan@example.com", "password": PASSWORD, "display_name": "Scan"}
    assert (await client.post("/api/v1/auth/register", json=creds)).status_code == 201
    bad = await client.post("/api/v1/auth/register", json=creds)
    assert bad.status_code == 409
    login = {"email": creds["email"], "password": PASSWORD}
    wrong = await client.post("/api/v1/auth/login", json={**login, "password": "nope" * 3})
    assert wrong.status_code == 401
    tokens = (await client.post("/api/v1/auth/login", json=login)).json()
    user = {"Authorization": f"Bearer {tokens['access_token']}"}
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200, r.text
    tokens = r.json()
    user = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.get("/api/v1/users/me", headers=user)).status_code == 200
    key = (await client.post("/api/v1/api-keys", json={"name": "ci"}, headers=user)).json()["key"]
    by_key = {"X-API-Key": key}
    assert (await client.get("/api/v1/api-keys", headers=by_key)).status_code == 200

    r = await client.post("/api/v1/conversations", json={"first_message": "Hi"}, headers=user)
    assert r.status_code == 201, r.text
    cid = r.json()["conversation_id"]
    r = await client.post(
        f"/api/v1/conversations/{cid}/messages?stream=true", json={"content": "Go"}, headers=user
    )
    assert r.status_code == 201 and "event: done" in r.text, r.text
    # The provider refuses the key and echoes it back, as real providers do; both fail.
    echo = {"error": {"message": f"Incorrect API key provided: {PROVIDER_KEY}", "code": 401}}
    server.replies.extend([Reply.json(401, echo), Reply.json(401, echo)])
    r = await client.post(
        f"/api/v1/conversations/{cid}/messages", json={"content": "Again"}, headers=by_key
    )
    assert r.status_code >= 500 or r.status_code == 201, r.text
    assert (await client.get(f"/api/v1/conversations/{cid}", headers=user)).status_code == 200
    r = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-test", "messages": [{"role": "user", "content": "Hey"}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 200, r.text
    assert (await client.get("/v1/models", headers={"Authorization": f"Bearer {key}"})).is_success

    files = {"file": ("notes.txt", b"Kelp forests shelter otters.", "text/plain")}
    r = await client.post("/api/v1/documents", files=files, headers=user)
    assert r.status_code == 201, r.text
    await client.post("/api/v1/search", json={"query": "otters"}, headers=user)
    faq = {"question": "Do otters sleep?", "answer": "Holding hands."}
    assert (await client.post("/api/v1/faqs", json=faq, headers=user)).status_code == 201
    hook = {"url": "https://hooks.example.com/in"}
    assert (await client.post("/api/v1/webhooks", json=hook, headers=user)).status_code == 201
    assert (await client.get("/api/v1/webhooks", headers=user)).status_code == 200
    assert (await client.get("/api/v1/users/me/export", headers=user)).status_code == 200
    admin_headers = {"Authorization": f"Bearer {admin}"}
    assert (await client.get("/api/v1/analytics/dashboard", headers=admin_headers)).is_success
    assert (await client.get("/metrics")).status_code == 200
    assert (await client.get("/ready")).status_code in (200, 503)

    await snapshot()  # the hashes, before logout and erasure remove them
    forged = tokens["access_token"][:-4] + "AAAA"
    for headers in (
        {"Authorization": f"Bearer {forged}"},
        {"Authorization": "Bearer bgpt_not-a-key"},
        {"X-API-Key": key[:-2] + "xx"},
    ):
        assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 401
    r = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}, headers=user
    )
    assert r.status_code == 204, r.text
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401
    assert (await client.delete("/api/v1/users/me", headers=by_key)).status_code == 204


@pytest.mark.parametrize("backend", BACKENDS)
async def test_no_secret_in_any_response_or_log_line(
    backend: str, tmp_path: Path, provider: FakeOpenAIServer
) -> None:
    pg_name = None
    if backend == "postgres":
        url, pg_name = await _fresh_pg_database()
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'scan.db'}"
    settings = _settings(tmp_path, url, provider.base_url)
    app = create_app(settings)
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)  # the service's default level
    recorder = Recorder()
    hashes: list[str] = []
    try:
        async with app.router.lifespan_context(app):  # migrations, jobs, webhooks, like serve
            container = app.state.container
            async with container.sessions() as db:
                admin_key = await container.auth.ensure_admin(db, "root@example.com")
            assert admin_key
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://test",
                event_hooks={"response": [recorder.hook]},
            ) as client:

                async def snapshot() -> None:
                    async with container.engine.connect() as conn:
                        for sql in (
                            "SELECT password_hash FROM users WHERE password_hash IS NOT NULL",
                            "SELECT key_hash FROM api_keys",
                            "SELECT token_hash FROM refresh_tokens",
                        ):
                            hashes.extend(row[0] for row in (await conn.execute(text(sql))).all())

                await _flow(client, provider, admin_key, snapshot)
            await container.docs.jobs.join()
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        if pg_name:
            await _drop_pg_database(pg_name)

    assert len(recorder.responses) >= 25 and logs.getvalue().count("\n") >= 25
    assert any(h.startswith("$argon2") for h in hashes) and len(hashes) >= 3
    needles = {
        "provider key": PROVIDER_KEY,
        "fallback key": FALLBACK_KEY,
        "moderation key": MODERATION_KEY,
        "JWT secret": JWT_SECRET,
        "password": PASSWORD,
        **{f"hash #{i}": h for i, h in enumerate(hashes)},
    }
    haystacks = {"responses": "\n".join(recorder.responses), "logs": logs.getvalue()}
    # The provider did receive its key (the scan would be vacuous otherwise).
    assert any(PROVIDER_KEY in str(r.headers) for r in provider.requests)
    leaks = [
        f"{what} in {where}"
        for what, secret in needles.items()
        for where, haystack in haystacks.items()
        if secret in haystack or json.dumps(secret)[1:-1] in haystack
    ]
    assert not leaks, leaks
