"""Operations: health, readiness, request ids, OpenAPI, error envelope."""

from __future__ import annotations

import httpx


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = await client.get("/ready")
    assert r.status_code == 200 and r.json()["checks"]["database"] == "ok"


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
