"""The FastAPI application: routers, error handlers, middleware, lifespan."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from botgpt import migrate
from botgpt.analytics.router import router as analytics_router
from botgpt.auth.profile_router import router as profile_router
from botgpt.auth.router import router as auth_router
from botgpt.body_limit import BodyLimitMiddleware
from botgpt.bots.cors import BotCorsMiddleware
from botgpt.bots.public_router import router as public_chat_router
from botgpt.bots.router import router as bots_router
from botgpt.config import Settings, setting_sources
from botgpt.container import build_container
from botgpt.conversations.chat_router import router as chat_router
from botgpt.conversations.feedback_router import router as feedback_router
from botgpt.conversations.router import router as conversations_router
from botgpt.conversations.router import seed_router, usage_router
from botgpt.conversations.turn_router import router as turn_router
from botgpt.conversations.ws_router import router as ws_router
from botgpt.documents.router import router as documents_router
from botgpt.documents.router import seed_router as documents_seed_router
from botgpt.documents.search_router import router as search_router
from botgpt.documents.uploads import UPLOAD_BODY_CEILING
from botgpt.errors import install_error_handlers
from botgpt.faqs.category_router import router as faq_categories_router
from botgpt.faqs.router import router as faqs_router
from botgpt.idempotency import Replay
from botgpt.llm.base import LLMProvider
from botgpt.observability.logging import protect_server_logs
from botgpt.observability.middleware import RequestContextMiddleware
from botgpt.observability.router import router as ops_router
from botgpt.openai_api.router import router as openai_router
from botgpt.openapi import install_openapi
from botgpt.privacy.router import router as privacy_router
from botgpt.text import refuse_nul_parameters
from botgpt.web.auth_router import router as web_auth_router
from botgpt.web.router import router as web_router
from botgpt.webhooks.router import router as webhooks_router

log = logging.getLogger("botgpt")


# Collector thresholds of a serving process (Python's defaults: 700, 10, 10).
GC_THRESHOLDS = (10_000, 20, 20)


def security_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    """Headers every response carries: no MIME sniffing, no framing, no referrer leaks."""
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
    ]
    if settings.hsts_seconds:
        # Only behind HTTPS: browsers then refuse plain HTTP to this host for that long.
        value = f"max-age={settings.hsts_seconds}; includeSubDomains"
        headers.append((b"strict-transport-security", value.encode()))
    return headers


def create_app(
    settings: Settings | None = None,
    provider: LLMProvider | None = None,
    *,
    run_migrations: bool = True,
) -> FastAPI:
    """Build the application for `settings` (read from the environment when omitted)."""
    settings = settings or Settings()
    container = build_container(settings, provider)
    protect_server_logs()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info("settings loaded", extra={"sources": setting_sources(settings)})
        if run_migrations:
            await migrate.upgrade(container.engine)
        await container.docs.jobs.start()
        await container.webhooks.start()
        # Settles replies that a killed process left generating, then keeps sweeping.
        await container.chat.leases.start()
        # Everything built so far (modules, settings, services) lives as long as the process:
        # keep it out of the collector's full passes, which otherwise walk it all and stop
        # every stream for hundreds of ms under load (bench/stream_load.py).
        gc.collect()
        gc.freeze()
        # A young collection every 700 allocations (the default) walks every request in
        # flight each time: at 32 concurrent turns that was 6% of the server's CPU
        # (bench/chat_turn.py). Cycles are rare here; reference counting frees the rest.
        gc.set_threshold(GC_THRESHOLDS[0], GC_THRESHOLDS[1], GC_THRESHOLDS[2])
        for shared in (container.auth.revocations, container.streams.fanout):
            if shared is not None:
                await shared.start()
        yield
        await container.close()

    app = FastAPI(
        title="BOT GPT",
        version="0.1.0",
        description="Self-hosted conversational AI backend.",
        lifespan=lifespan,
        dependencies=[Depends(refuse_nul_parameters)],
    )
    app.state.container = container
    install_error_handlers(app)
    install_openapi(app)

    @app.exception_handler(Replay)
    async def _replay(_: Request, replay: Replay) -> JSONResponse:
        return JSONResponse(
            replay.body, status_code=replay.status_code, headers={"Idempotent-Replayed": "true"}
        )

    app.include_router(ops_router)
    app.include_router(auth_router)
    app.include_router(web_auth_router)
    app.include_router(profile_router)
    app.include_router(conversations_router)
    app.include_router(seed_router)
    app.include_router(turn_router)
    app.include_router(chat_router)
    app.include_router(usage_router)
    app.include_router(ws_router)
    app.include_router(openai_router)
    app.include_router(documents_router)
    app.include_router(documents_seed_router)
    app.include_router(search_router)
    app.include_router(bots_router, prefix="/api/v1")
    app.include_router(bots_router, prefix="/api", include_in_schema=False)  # seed 003
    app.include_router(feedback_router)
    app.include_router(faq_categories_router)  # before /faqs/{faq_id}
    app.include_router(faqs_router)
    app.include_router(webhooks_router)
    app.include_router(privacy_router)
    app.include_router(analytics_router)
    # After /api/v1/chat/send and /ws: anything else under /api/v1/chat/ is a bot's.
    app.include_router(public_chat_router, prefix="/api/v1/chat")
    app.include_router(public_chat_router, prefix="/api/chat", include_in_schema=False)  # seed 003
    app.include_router(web_router)  # the pages: /, /admin, /chat/{bot_id}, /widget.js, /static
    # Counted while the body is read, Content-Length or not; uploads enforce their own limit.
    # Added before CORS so that its 413s carry the CORS headers too.
    app.add_middleware(
        BodyLimitMiddleware,
        default=int(settings.max_body_mb * 1024 * 1024),
        routes={
            ("POST", "/api/v1/documents"): UPLOAD_BODY_CEILING,
            ("POST", "/documents"): UPLOAD_BODY_CEILING,  # seed 001's path
        },
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    # Outside the global CORS: a bot's public chat answers browsers by the bot's own origins.
    app.add_middleware(BotCorsMiddleware, lookup=container.bot_directory.find)
    app.add_middleware(RequestContextMiddleware, headers=security_headers(settings))
    return app
