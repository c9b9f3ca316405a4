"""Liveness, readiness and Prometheus metrics endpoints."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from botgpt.deps import ContainerDep
from botgpt.exceptions import AuthenticationFailed
from botgpt.llm.resilience import BreakerState, breaker_states
from botgpt.observability import metrics
from botgpt.openapi import errors_doc

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "A dependency is not ready"}})
async def ready(c: ContainerDep) -> JSONResponse:
    """Database (and Redis, Qdrant when configured) answer, else 503; breakers are reported.

    An open breaker does not make the instance unready: every instance shares the
    provider, so taking this one out of rotation would not help, and history,
    documents and search still work.
    """
    checks: dict[str, str] = {}
    try:
        async with c.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:  # any failure means not ready; the reason goes to the log, not the client
        checks["database"] = "unavailable"
    if c.settings.redis_url:
        checks["redis"] = "ok" if await c.docs.jobs.healthy() else "unavailable"
    if c.docs.indexes.vectors is not None:
        checks["qdrant"] = "ok" if await c.docs.indexes.vectors.healthy() else "unavailable"
    ok = all(v == "ok" for v in checks.values())
    providers = [
        {"name": name, "model": model, "breaker": str(state)}
        for name, model, state in breaker_states(c.llm)
    ]
    open_ = sum(p["breaker"] == BreakerState.OPEN for p in providers)
    checks["llm"] = "ok" if open_ == 0 else "unavailable" if open_ == len(providers) else "degraded"
    return JSONResponse(
        {"status": "ready" if ok else "not_ready", "checks": checks, "llm_providers": providers},
        status_code=200 if ok else 503,
    )


@router.get(
    "/metrics",
    responses={**errors_doc(401), 200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    response_class=Response,
)
async def prometheus_metrics(
    c: ContainerDep, authorization: Annotated[str | None, Header()] = None
) -> Response:
    """Prometheus metrics of this process (bearer token required when one is configured)."""
    token = c.settings.metrics_token
    if token is not None:
        expected = f"Bearer {token.get_secret_value()}"
        if not hmac.compare_digest((authorization or "").encode(), expected.encode()):
            raise AuthenticationFailed("Send the metrics token as a bearer token.")
    metrics.STREAMS_ACTIVE.set(c.streams.live_count)
    for name, model, state in breaker_states(c.llm):
        metrics.BREAKER_OPEN.labels(name, model).set(1 if state == BreakerState.OPEN else 0)
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
