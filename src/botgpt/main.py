"""The FastAPI application: routers, error handlers, middleware, lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from botgpt import migrate
from botgpt.analytics.router import router as analytics_router
from botgpt.auth.revocations import RevocationBus
from botgpt.auth.router import router as auth_router
from botgpt.auth.security import TokenCodec
from botgpt.auth.service import AuthService
from botgpt.config import Settings
from botgpt.conversations.chat_router import router as chat_router
from botgpt.conversations.fanout import TurnFanout
from botgpt.conversations.grounding import Grounder
from botgpt.conversations.router import router as conversations_router
from botgpt.conversations.router import usage_router
from botgpt.conversations.streams import StreamHub
from botgpt.conversations.turn import ChatService
from botgpt.conversations.turn_router import router as turn_router
from botgpt.conversations.ws_router import router as ws_router
from botgpt.db import make_engine, make_sessionmaker
from botgpt.deps import Container
from botgpt.documents.router import router as documents_router
from botgpt.documents.search_router import router as search_router
from botgpt.documents.service import build_document_services, close_document_services
from botgpt.errors import install_error_handlers
from botgpt.faqs.router import router as faqs_router
from botgpt.idempotency import Replay
from botgpt.llm.base import LLMProvider
from botgpt.llm.factory import build_provider
from botgpt.moderation.service import build_moderator
from botgpt.observability.middleware import RequestContextMiddleware
from botgpt.observability.router import router as ops_router
from botgpt.openai_api.router import router as openai_router
from botgpt.privacy.router import router as privacy_router
from botgpt.ratelimit import build_limiters
from botgpt.sqlrunner import make_runner
from botgpt.webhooks.router import router as webhooks_router
from botgpt.webhooks.service import Dispatcher


def build_container(settings: Settings, provider: LLMProvider | None = None) -> Container:
    """Create the engine, services and provider for `settings`."""
    engine = make_engine(settings.effective_database_url, settings.db_pool_size)
    auth = AuthService(
        TokenCodec(settings.jwt_key(), settings.access_token_minutes),
        settings.refresh_token_days,
        settings.api_key_cache_seconds,
    )
    container = Container(settings, engine, make_sessionmaker(engine), auth)
    if settings.redis_url:
        auth.revocations = RevocationBus(settings.redis_url, auth.apply_revocation)
    llm = build_provider(settings, provider)
    container.services["llm"] = llm
    runner = make_runner(engine, settings.effective_database_url)
    container.services["sql"] = runner
    container.services.update(build_document_services(settings, engine, container.sessions))
    container.services.update(
        build_limiters(settings.redis_url, settings.rate_limit_chat, settings.rate_limit_auth)
    )
    grounder = Grounder(container.services["document_scope"], settings.grounded_top_k)
    moderator = build_moderator(settings)
    container.services["moderator"] = moderator
    chat = ChatService(
        settings, llm, runner, grounder, container.services["limits.chat"], moderator
    )
    container.services["chat"] = chat
    hub = StreamHub(chat, settings.stream_reattach_grace_seconds)
    if settings.redis_url:  # re-attach and cancel work from any process
        hub.fanout = TurnFanout(settings.redis_url, hub.cancel)
    container.services["streams"] = hub
    dispatcher = Dispatcher(settings, container.sessions)
    container.services["webhooks"] = dispatcher
    chat.on_event = dispatcher.emit
    chat.leases.on_event = dispatcher.emit
    container.services["ingestor"].on_event = dispatcher.emit
    return container


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

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if run_migrations:
            await migrate.upgrade(container.engine)
        await container.services["jobs"].start()
        await container.services["webhooks"].start()
        # Settles replies that a killed process left generating, then keeps sweeping.
        await container.services["chat"].leases.start()
        # Everything built so far (modules, settings, services) lives as long as the process:
        # keep it out of the collector's full passes, which otherwise walk it all and stop
        # every stream for hundreds of ms under load (bench/stream_load.py).
        gc.collect()
        gc.freeze()
        revocations = container.auth.revocations
        fanout = container.services["streams"].fanout
        for shared in (revocations, fanout):
            if shared is not None:
                await shared.start()
        yield
        await close_document_services(container.services)
        # Live turns end (and tell the other processes so) before the Redis links close.
        await container.services["streams"].close()
        for shared in (revocations, fanout):
            if shared is not None:
                await shared.stop()
        await container.services["chat"].drain()
        await container.services["chat"].leases.stop()
        await container.services["llm"].aclose()
        await container.services["moderator"].aclose()
        await container.services["sql"].close()
        await container.services["webhooks"].stop()
        await container.engine.dispose()

    app = FastAPI(
        title="BOT GPT",
        version="0.1.0",
        description="Self-hosted conversational AI backend.",
        lifespan=lifespan,
    )
    app.state.container = container
    install_error_handlers(app)

    @app.exception_handler(Replay)
    async def _replay(_: Request, replay: Replay) -> JSONResponse:
        return JSONResponse(
            replay.body, status_code=replay.status_code, headers={"Idempotent-Replayed": "true"}
        )

    app.include_router(ops_router)
    app.include_router(auth_router)
    app.include_router(conversations_router)
    app.include_router(turn_router)
    app.include_router(chat_router)
    app.include_router(usage_router)
    app.include_router(ws_router)
    app.include_router(openai_router)
    app.include_router(documents_router)
    app.include_router(search_router)
    app.include_router(faqs_router)
    app.include_router(webhooks_router)
    app.include_router(privacy_router)
    app.include_router(analytics_router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(RequestContextMiddleware, headers=security_headers(settings))
    return app
