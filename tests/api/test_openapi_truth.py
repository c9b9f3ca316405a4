"""The OpenAPI document tells the truth: body errors, SSE responses, the download's media type."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import AppCtx, AuthedUser


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    ]


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    node: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def _takes_stream(spec: dict[str, Any], op: dict[str, Any]) -> bool:
    if any(p.get("name") == "stream" for p in op.get("parameters", [])):
        return True
    content = op.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    return bool(schema) and "stream" in _resolve(spec, schema).get("properties", {})


async def test_every_route_with_a_body_documents_400_and_413(ctx: AppCtx) -> None:
    spec = ctx.app.openapi()
    missing = [
        (method, path, code)
        for method, path, op in _operations(spec)
        if "requestBody" in op
        for code in ("400", "413")
        if code not in op["responses"]
    ]
    assert not missing, missing
    with_body = [p for _, p, op in _operations(spec) if "requestBody" in op]
    assert "/api/v1/conversations" in with_body and "/api/v1/auth/login" in with_body


async def test_stream_routes_document_text_event_stream(ctx: AppCtx) -> None:
    spec = ctx.app.openapi()
    streaming = [(m, p, op) for m, p, op in _operations(spec) if _takes_stream(spec, op)]
    assert len(streaming) >= 5, [(m, p) for m, p, _ in streaming]
    # The stream answers with the route's own success status (201 for a new turn), so the
    # event stream is documented under that same status, beside the JSON form.
    undocumented = [
        (method, path, code)
        for method, path, op in streaming
        for code, response in op["responses"].items()
        if code.startswith("2") and "application/json" in response.get("content", {})
        if "text/event-stream" not in response["content"]
    ]
    assert not undocumented, undocumented


async def test_download_serves_a_documented_media_type(
    ctx: AppCtx, client: httpx.AsyncClient, user: AuthedUser
) -> None:
    spec = ctx.app.openapi()
    op = spec["paths"]["/api/v1/documents/{document_id}/file"]["get"]
    documented = set(op["responses"]["200"]["content"])
    cases = [
        ("notes.txt", b"Plain words.", "application/x-made-up"),  # a client's odd claim
        ("notes.md", b"# Title\n\nSome words.", "text/markdown; charset=utf-8"),
        ("page.html", b"<html><body><p>Hi</p></body></html>", "application/octet-stream"),
    ]
    for name, data, declared in cases:
        r = await client.post(
            "/api/v1/documents", files={"file": (name, data, declared)}, headers=user.headers
        )
        assert r.status_code == 201, r.text
        r = await client.get(f"/api/v1/documents/{r.json()['id']}/file", headers=user.headers)
        assert r.status_code == 200 and r.content == data
        served = r.headers["content-type"].split(";", 1)[0].strip()
        assert served in documented, (name, served, documented)
