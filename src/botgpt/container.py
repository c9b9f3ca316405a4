"""The typed service container: every long-lived service, built once by the app factory.

Routes reach services through `Annotated` dependencies on this dataclass (see deps.py), so
`mypy --strict` checks every lookup; there are no string keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from botgpt.auth.revocations import RevocationBus
from botgpt.auth.security import TokenCodec
from botgpt.auth.service import AuthService
from botgpt.bots.directory import BotDirectory
from botgpt.bots.public import PublicChat
from botgpt.bots.secrets import SecretBox
from botgpt.bots.service import BotService
from botgpt.config import Settings
from botgpt.conversations.admission import Admission
from botgpt.conversations.fanout import TurnFanout
from botgpt.conversations.grounding import Grounder
from botgpt.conversations.streams import StreamHub
from botgpt.conversations.turn import ChatService
from botgpt.db import make_engine, make_sessionmaker
from botgpt.documents.service import DocumentServices, build_document_services
from botgpt.faqs.service import FaqService
from botgpt.llm.base import LLMProvider
from botgpt.llm.factory import build_provider
from botgpt.llm.pool import ProviderPool
from botgpt.moderation.service import Moderator, build_moderator
from botgpt.ratelimit import Limiters, build_limiters
from botgpt.sqlrunner import SqlRunner, make_runner
from botgpt.webhooks.service import Dispatcher


@dataclass(slots=True)
class Container:
    """Everything long-lived the app needs."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    auth: AuthService
    sql: SqlRunner
    llm: LLMProvider  # the configured provider chain
    providers: ProviderPool
    docs: DocumentServices
    limits: Limiters
    moderator: Moderator
    faqs: FaqService
    chat: ChatService
    streams: StreamHub
    webhooks: Dispatcher
    bots: BotService
    bot_directory: BotDirectory
    public_chat: PublicChat

    async def close(self) -> None:
        """Release everything, live turns first (app shutdown)."""
        await self.docs.close()
        # Live turns end (and tell the other processes so) before the Redis links close.
        await self.streams.close()
        for shared in (self.auth.revocations, self.streams.fanout):
            if shared is not None:
                await shared.stop()
        await self.chat.drain()
        await self.chat.leases.stop()
        await self.chat.answers.aclose()
        await self.providers.aclose()
        await self.llm.aclose()
        await self.moderator.aclose()
        await self.sql.close()
        await self.webhooks.stop()
        await self.engine.dispose()


def build_container(settings: Settings, provider: LLMProvider | None = None) -> Container:
    """Create the engine, services and provider for `settings`."""
    engine = make_engine(settings.effective_database_url, settings.db_pool_size)
    sessions = make_sessionmaker(engine)
    auth = AuthService(
        TokenCodec(settings.jwt_key(), settings.access_token_minutes),
        settings.refresh_token_days,
        settings.api_key_cache_seconds,
    )
    if settings.redis_url:
        auth.revocations = RevocationBus(settings.redis_url, auth.apply_revocation)
    llm = build_provider(settings, provider)
    providers = ProviderPool(settings, llm)
    runner = make_runner(engine, settings.effective_database_url)
    docs = build_document_services(settings, engine, sessions)
    limits = build_limiters(settings.redis_url, settings.rate_limit_chat, settings.rate_limit_auth)
    moderator = build_moderator(settings)
    faqs = FaqService(docs.embedder, sessions)
    chat = ChatService(
        settings,
        providers,
        runner,
        Grounder(docs.scope, settings.grounded_top_k),
        Admission(limits.chat, moderator, settings.moderation_fail_closed),
        faqs,
        docs.embedder,
    )
    hub = StreamHub(chat, settings.stream_reattach_grace_seconds)
    if settings.redis_url:  # re-attach and cancel work from any process
        hub.fanout = TurnFanout(settings.redis_url, hub.cancel)
    dispatcher = Dispatcher(settings, sessions)
    chat.on_event = dispatcher.emit
    docs.ingestor.on_event = dispatcher.emit
    directory = BotDirectory(sessions)
    box = SecretBox(settings.encryption_keys())
    bots = BotService(box, docs.scope.check_owned, directory.forget)
    public_chat = PublicChat(settings, directory, chat, docs.scope, box, limits, sessions)
    public_chat.on_event = dispatcher.emit
    return Container(
        settings=settings,
        engine=engine,
        sessions=sessions,
        auth=auth,
        sql=runner,
        llm=llm,
        providers=providers,
        docs=docs,
        limits=limits,
        moderator=moderator,
        faqs=faqs,
        chat=chat,
        streams=hub,
        webhooks=dispatcher,
        bots=bots,
        bot_directory=directory,
        public_chat=public_chat,
    )
