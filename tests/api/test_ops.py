"""Operations: health, readiness, request ids, OpenAPI, error envelope."""

from __future__ import annotations

import httpx

from botgpt.llm.fake import FakeProvider
from tests.conftest import AuthedUser


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = await client.get("/ready")
    assert r.status_code == 200 and r.json()["checks"]["database"] == "ok"
    assert r.json()["checks"]["llm"] == "ok"
    assert r.json()["llm_providers"] == [
        {"name": "fake", "model": "fake-model", "breaker": "closed"}
    ]


async def test_security_headers_on_every_response(client: httpx.AsyncClient) -> None:
    for r in (await client.get("/health"), await client.get("/api/v1/nope")):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "strict-transport-security" not in r.headers  # off unless served over HTTPS


async def test_request_id_echoed(client: httpx.AsyncClient) -> None:
    r = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/health")
    assert len(r.headers["x-request-id"]) == 32


async def test_openapi_documents_errors(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    post = spec["paths"]["/api/v1/conversations"]["post"]
    assert {"401", "404", "422", "502", "503", "504"} <= set(post["responses"])
    assert "ErrorResponse" in spec["components"]["schemas"]


async def test_unknown_route_uses_error_envelope(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/nope")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    r = await client.delete("/health")
    assert r.status_code == 405
    assert set(r.json()["error"]) == {"code", "message", "details"}


async def test_json_logs_carry_the_request_id(
    client: httpx.AsyncClient, user: AuthedUser, fake: FakeProvider
) -> None:
    import io
    import json
    import logging

    from botgpt.llm.errors import ProviderBadResponse
    from botgpt.observability.logging import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        fake.enqueue(ProviderBadResponse("garbage"))
        r = await client.post(
            "/api/v1/conversations",
            json={"first_message": "hi"},
            headers={**user.headers, "X-Request-ID": "req-42"},
        )
        assert r.status_code == 502
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    mine = [line for line in lines if line["logger"] in ("botgpt.turn", "botgpt.access")]
    assert {line["logger"] for line in mine} == {"botgpt.turn", "botgpt.access"}
    assert all(line["request_id"] == "req-42" for line in mine)
    access = next(line for line in mine if line["logger"] == "botgpt.access")
    assert access["status"] == 502 and access["path"] == "/api/v1/conversations"


def test_hsts_only_when_configured() -> None:
    from botgpt.config import Settings
    from botgpt.main import security_headers

    on = dict(security_headers(Settings(_env_file=None, hsts_seconds=31536000)))  # type: ignore[call-arg]
    assert on[b"strict-transport-security"] == b"max-age=31536000; includeSubDomains"
    off = dict(security_headers(Settings(_env_file=None)))  # type: ignore[call-arg]
    assert b"strict-transport-security" not in off
