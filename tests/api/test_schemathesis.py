"""Schemathesis over the app's own OpenAPI document, in-process through ASGI.

Every operation gets generated requests (stateless), sent with real credentials: an admin's
service API key (which reaches the admin routes and acts for generated `user_id`s) and an
ordinary user's login token. Each response must be no server error, have a documented status
code and content type, and match its documented schema. The app runs with its own lifespan
(migrations, job queue) inside Schemathesis's ASGI client, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from botgpt.cli import _prepare
from botgpt.config import Settings
from botgpt.llm.fake import FakeProvider
from botgpt.main import create_app
from tests.conftest import BACKENDS, app_settings, backend_database

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Examples per operation and credential: ~55 operations x 2 credentials x 12 = ~1,250
# requests per backend, 35-65 s each on this shared 2-core machine (both backends < 3 min).
# BOTGPT_SCHEMATHESIS_EXAMPLES=60 runs a deeper pass (~6,200 requests per backend).
EXAMPLES = int(os.environ.get("BOTGPT_SCHEMATHESIS_EXAMPLES", "12"))


def _settings(data_dir: Path, url: str) -> Settings:
    return app_settings(
        data_dir,
        url,
        llm_breaker_failures=1000,
        embedding_provider="hash",
        rate_limit_chat="",
        log_level="WARNING",
    )


def _login(schema: Any) -> dict[str, str]:
    """Register and sign in an ordinary user through the app; its bearer header."""
    client = schemathesis_asgi.get_client(schema.app)
    creds = {"email": f"fuzz-{secrets.token_hex(4)}@example.com", "password": "fuzzing is fun"}
    r = client.request("POST", "http://testserver/api/v1/auth/register", json=creds)
    assert r.status_code == 201, r.text
    r = client.request("POST", "http://testserver/api/v1/auth/login", json=creds)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


# Operations that end the credentials they are sent with go last, so they cannot starve the
# others of a working login.
_ENDS_CREDENTIALS = ("POST /api/v1/auth/logout", "DELETE /api/v1/users/me")


def _exercise(headers: dict[str, str], counter: list[int]) -> Callable[[Any], None]:
    def exercise(case: Any) -> None:
        counter[0] += 1
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS, headers=headers)

    return exercise


def _run(schema: Any, credentials: dict[str, dict[str, str]]) -> tuple[int, list[str]]:
    """Every operation x every credential; returns (requests sent, failure reports)."""
    failures: list[str] = []
    counter = [0]
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda op: op.label in _ENDS_CREDENTIALS)
    for operation in operations:
        for who, headers in credentials.items():
            test: Callable[[], None] = settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],  # no shrinking: report the first
                suppress_health_check=list(HealthCheck),
            )(given(case=operation.as_strategy())(_exercise(headers, counter)))
            try:
                test()
            except Exception as exc:  # one report per operation and credential
                failures.append(f"{operation.label} as {who}:\n{exc}"[:3000])
    return counter[0], failures


@pytest.mark.parametrize("backend", BACKENDS)
async def test_schemathesis_finds_nothing(backend: str, tmp_path: Path) -> None:
    async with backend_database(backend, tmp_path) as url:
        config = _settings(tmp_path, url)
        admin_key = await _prepare(config)  # migrations and the admin's key, as `serve` does
        assert admin_key
        app = create_app(config, provider=FakeProvider(), run_migrations=False)
        started = time.monotonic()
        try:
            schema = schemathesis.openapi.from_asgi("/openapi.json", app)

            def fuzz() -> tuple[int, list[str]]:
                credentials = {"service key": {"Authorization": f"Bearer {admin_key}"}}
                credentials["login token"] = _login(schema)
                return _run(schema, credentials)

            sent, failures = await asyncio.to_thread(fuzz)
        finally:
            await asyncio.to_thread(schemathesis_asgi.shutdown_lifespans)
    print(f"schemathesis {backend}: {sent} requests in {time.monotonic() - started:.0f}s")
    assert not failures, "\n\n".join(failures)
    assert sent > 500


def test_every_operation_is_fuzzed(tmp_path: Path) -> None:
    # Operations come from the app's own document: a route added later is fuzzed without
    # anyone listing it here.
    app = create_app(_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"))
    schema = schemathesis.openapi.from_dict(app.openapi())
    labels = [r.ok().label for r in schema.get_all_operations()]
    assert len(labels) >= 50 and "POST /api/v1/conversations" in labels
    assert len(set(labels)) == len(labels)
