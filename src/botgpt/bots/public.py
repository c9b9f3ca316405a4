"""The public chat: visitors of an owner's website talk to a bot without an account.

A visitor is a session id (issued by the server, or a long random one the page brings). Each
session is a conversation owned by the bot's owner, tagged with the bot and the session, so
it shows in the owner's conversations and analytics. Turns go through the one chat turn with
the bot's profile; the bot's limits (per session, per client address, per bot per day) are
added to the turn's admission. A visitor the website signed (`user_id` + `user_token`, an
HMAC of the id with the bot's signing secret) keeps one history across devices.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from botgpt.bots.directory import BotDirectory, BotSnapshot
from botgpt.bots.profiles import bot_profile
from botgpt.bots.public_schemas import BotConfigPublic, PublicMessage, VisitorFeedback
from botgpt.bots.schemas import BotWidget
from botgpt.bots.secrets import SecretBox
from botgpt.config import Settings
from botgpt.conversations.feedback import FeedbackCreate, rate
from botgpt.conversations.models import Conversation, Message, MessageFeedback
from botgpt.conversations.records import Turn, TurnRequest, VisitorLink
from botgpt.conversations.turn import ChatService
from botgpt.documents.models import READY
from botgpt.documents.scope import DocumentScope
from botgpt.events import EventSink, no_events
from botgpt.exceptions import AuthenticationFailed, NotFound
from botgpt.ratelimit import Limiters, RateLimiter


def visitor_signature(signing_secret: str, user_id: str) -> str:
    """The `user_token` a website sends for its user `user_id` (hex HMAC-SHA256)."""
    return hmac.new(signing_secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class VisitorTurn:
    """A prepared visitor turn and what the reply needs besides it."""

    turn: Turn
    bot: BotSnapshot
    session_id: str
    first: bool


class PublicChat:
    """Runs bots' public conversations."""

    def __init__(
        self,
        settings: Settings,
        directory: BotDirectory,
        chat: ChatService,
        scope: DocumentScope,
        box: SecretBox,
        limits: Limiters,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.chat = chat
        self.scope = scope
        self.box = box
        self.limits = limits
        self.sessions = sessions
        self.on_event: EventSink = no_events
        self.per_address = limits.make("bot-address", settings.rate_limit_public)
        self._caps: dict[str, RateLimiter] = {}
        # (bot, session) -> conversation: a session's conversation never changes until it is
        # cleared, so a visitor's turn needs no lookup query (a stale entry is retried).
        self._known: OrderedDict[tuple[str, str], str] = OrderedDict()

    async def bot(self, bot_id: str) -> BotSnapshot:
        """An active bot; any other (inactive, deleted, never existed) is missing."""
        bot = await self.directory.find(bot_id)
        if bot is None or not bot.active:
            raise NotFound("Bot not found.")
        return bot

    async def config(self, bot_id: str) -> BotConfigPublic:
        """What a chat page or widget shows before the first message."""
        bot = await self.bot(bot_id)
        return BotConfigPublic(
            id=bot.id,
            name=bot.name,
            welcome_message=bot.welcome_message,
            starters=list(bot.starters),
            widget=BotWidget(**bot.widget),
        )

    async def prepare(self, bot_id: str, body: PublicMessage, address: str) -> VisitorTurn:
        """Admit and store a visitor's message; the reply is still to come."""
        bot = await self.bot(bot_id)
        visitor_id = self._verified_visitor(bot, body)
        session_id, conversation_id = await self._session(bot, body.session_id, visitor_id)
        knowledge = await self._ready_knowledge(bot)
        session_cap = self._cap("bot-session", f"{bot.session_message_cap}/day")
        day_cap = self._cap("bot-day", f"{bot.daily_message_cap}/day")
        request = TurnRequest(
            owner_id=bot.owner_id,
            text=body.message,
            conversation_id=conversation_id,
            mode="grounded" if knowledge else "open",
            document_ids=knowledge or None,
            profile=bot_profile(bot, self.settings, self.box),
            visitor=VisitorLink(bot.id, session_id, visitor_id),
            rate_key=f"visitor:{bot.id}:{session_id}",
            extra_limits=(
                (self.per_address, f"{bot.id}:{address}"),
                (session_cap, f"{bot.id}:{session_id}"),
                (day_cap, bot.id),
            ),
        )
        try:
            turn = await self.chat.prepare(request)
        except NotFound:
            if conversation_id is None:
                raise
            # The session was cleared meanwhile (another process): it starts over.
            self._known.pop((bot.id, session_id), None)
            conversation_id = None
            turn = await self.chat.prepare(
                dataclasses.replace(request, conversation_id=None, document_ids=knowledge or None)
            )
        self._remember(bot.id, session_id, turn.conversation_id)
        event = {"bot_id": bot.id, "session_id": session_id, **turn.ids()}
        if conversation_id is None:
            self.on_event(bot.owner_id, "bot.session_started", event)
        self.on_event(bot.owner_id, "bot.message_received", event)
        return VisitorTurn(turn, bot, session_id, conversation_id is None)

    def answered(self, visitor: VisitorTurn) -> None:
        """Tell the owner's webhooks a reply went out."""
        turn = visitor.turn
        self.on_event(
            visitor.bot.owner_id,
            "bot.message_answered",
            {
                "bot_id": visitor.bot.id,
                "session_id": visitor.session_id,
                **turn.ids(),
                "status": turn.assistant.status,
                "source": turn.assistant.source,
            },
        )

    async def history(self, bot_id: str, session_id: str) -> tuple[str | None, list[Message]]:
        """The session's conversation id and messages, oldest first (none for a new session)."""
        bot = await self.bot(bot_id)
        async with self.sessions() as db:
            conv_id = await self._conversation_of(db, bot.id, session_id, None)
            if conv_id is None:
                return None, []
            rows = await db.execute(
                select(Message)
                .where(Message.conversation_id == conv_id, Message.superseded.is_(False))
                .order_by(Message.seq)
            )
            return conv_id, list(rows.scalars())

    async def clear(self, bot_id: str, session_id: str) -> None:
        """Forget a session: its conversation and messages are deleted."""
        bot = await self.bot(bot_id)
        self._known.pop((bot.id, session_id), None)
        async with self.sessions() as db:
            ids = select(Conversation.id).where(
                Conversation.bot_id == bot.id, Conversation.visitor_session == session_id
            )
            await db.execute(delete(Message).where(Message.conversation_id.in_(ids)))
            await db.execute(
                delete(Conversation).where(
                    Conversation.bot_id == bot.id, Conversation.visitor_session == session_id
                )
            )
            await db.commit()

    async def feedback(
        self, bot_id: str, message_id: str, body: VisitorFeedback
    ) -> MessageFeedback:
        """A visitor's rating of a reply in their own session."""
        bot = await self.bot(bot_id)
        async with self.sessions() as db:
            found = await db.execute(
                select(Message)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(
                    Message.id == message_id,
                    Conversation.bot_id == bot.id,
                    Conversation.visitor_session == body.session_id,
                )
            )
            message = found.scalar_one_or_none()
            if message is None:
                raise NotFound("Message not found.")
            rating = FeedbackCreate(rating=body.rating, comment=body.comment)
            row = await rate(db, message, f"session:{body.session_id}", rating)
        self.on_event(
            bot.owner_id,
            "bot.feedback",
            {"bot_id": bot.id, "session_id": body.session_id, "message_id": message_id,
             "rating": body.rating},
        )  # fmt: skip
        return row

    # -- helpers ---------------------------------------------------------------------------------
    def _verified_visitor(self, bot: BotSnapshot, body: PublicMessage) -> str | None:
        if body.user_id is None and body.user_token is None:
            return None
        if body.user_id is None or body.user_token is None:
            raise AuthenticationFailed("Send both user_id and user_token, or neither.")
        secret = self.box.decrypt(bot.signing_secret_encrypted)
        expected = visitor_signature(secret, body.user_id)
        if not hmac.compare_digest(expected, body.user_token.lower()):
            raise AuthenticationFailed("The visitor's user_token does not match its user_id.")
        return body.user_id

    async def _session(
        self, bot: BotSnapshot, session_id: str | None, visitor_id: str | None
    ) -> tuple[str, str | None]:
        """The session to use and its conversation (None: a new session)."""
        if session_id is not None and visitor_id is None:
            known = self._known.get((bot.id, session_id))
            if known is not None:
                self._known.move_to_end((bot.id, session_id))
                return session_id, known
        async with self.sessions() as db:
            if visitor_id is not None:
                # A signed visitor continues their latest conversation on any device.
                found = await db.execute(
                    select(Conversation.id, Conversation.visitor_session)
                    .where(Conversation.bot_id == bot.id, Conversation.visitor_id == visitor_id)
                    .order_by(Conversation.created_at.desc())
                    .limit(1)
                )
                row = found.first()
                if row is not None:
                    return str(row.visitor_session), str(row.id)
            if session_id is None:
                return str(uuid.uuid4()), None
            conv_id = await self._conversation_of(db, bot.id, session_id, visitor_id)
            return session_id, conv_id

    @staticmethod
    async def _conversation_of(
        db: AsyncSession, bot_id: str, session_id: str, visitor_id: str | None
    ) -> str | None:
        query = select(Conversation.id, Conversation.visitor_id).where(
            Conversation.bot_id == bot_id, Conversation.visitor_session == session_id
        )
        row = (await db.execute(query.order_by(Conversation.created_at.desc()).limit(1))).first()
        if row is None:
            return None
        if row.visitor_id is not None and row.visitor_id != visitor_id and visitor_id is not None:
            return None  # another signed visitor's session: never shared
        return str(row.id)

    async def _ready_knowledge(self, bot: BotSnapshot) -> list[str]:
        """The bot's documents that can answer now (all of them while none is ready yet, so
        the visitor is told they are still being processed)."""
        if not bot.document_ids:
            return []
        docs = await self.scope.check_owned(bot.owner_id, bot.document_ids)
        ready = [d.id for d in docs if d.status == READY]
        return ready or list(bot.document_ids)

    def _remember(self, bot_id: str, session_id: str, conversation_id: str) -> None:
        self._known[(bot_id, session_id)] = conversation_id
        self._known.move_to_end((bot_id, session_id))
        while len(self._known) > 100_000:
            self._known.popitem(last=False)

    def _cap(self, scope: str, limits: str) -> RateLimiter:
        key = f"{scope}:{limits}"
        limiter = self._caps.get(key)
        if limiter is None:
            limiter = self._caps[key] = self.limits.make(scope, limits)
        return limiter
