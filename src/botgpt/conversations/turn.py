"""The chat turn (docs/architecture.md): admission, preparation, generation, follow-ups.

Every entry point (REST create/send/regenerate, the seeds' /chat/send, WebSocket, a bot's
public chat, `botgpt chat`) builds a `TurnRequest` and calls `ChatService.prepare`; the
prepared `Turn` is then run as a stream of events (`events`) or to the end (`complete`).
Whatever happens to the provider or the client, the assistant message ends `complete`,
`failed` or `cancelled` with the text generated so far.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from botgpt.config import Settings
from botgpt.conversations.admission import Admission
from botgpt.conversations.answer_cache import AnswerCache
from botgpt.conversations.checking import SupportChecker
from botgpt.conversations.followups import Followups
from botgpt.conversations.generation import Generator
from botgpt.conversations.grounding import Grounder
from botgpt.conversations.leases import LiveReplies
from botgpt.conversations.preparation import FaqMatcher, Preparer
from botgpt.conversations.profile import TurnProfile
from botgpt.conversations.records import Turn, TurnEvent, TurnRequest, TurnResult
from botgpt.events import EventSink
from botgpt.exceptions import ProviderFailed
from botgpt.llm.base import LLMProvider
from botgpt.llm.errors import LLMError
from botgpt.llm.pool import ProviderPool
from botgpt.retrieval.embedders import Embedder
from botgpt.sqlrunner import SqlRunner

__all__ = ["ChatService", "Turn", "TurnEvent", "TurnRequest", "TurnResult"]


class ChatService:
    """Runs chat turns; one instance per app."""

    def __init__(
        self,
        settings: Settings,
        providers: ProviderPool,
        runner: SqlRunner,
        grounder: Grounder | None = None,
        admission: Admission | None = None,
        faqs: FaqMatcher | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.settings = settings
        self.providers = providers
        self.runner = runner
        self.admission = admission or Admission()
        self.default_profile = TurnProfile.from_settings(settings)
        leases = LiveReplies(runner, settings.stream_lease_seconds, settings.stream_flush_seconds)
        self.answers = AnswerCache(runner, settings.redis_url, settings.answer_cache_seconds)
        self.preparer = Preparer(settings, runner, providers, grounder, faqs, leases, self.answers)
        self.generator = Generator(settings, runner, leases, SupportChecker(embedder))
        self.followups = Followups(settings, runner, self.answers)
        self.generator.on_finished = self.followups.after

    @property
    def provider(self) -> LLMProvider:
        """The app's configured provider chain (the default profile's)."""
        return self.providers.default

    @property
    def leases(self) -> LiveReplies:
        """The leases of the replies this process generates (see conversations/leases.py)."""
        return self.generator.leases

    @leases.setter
    def leases(self, leases: LiveReplies) -> None:
        self.preparer.leases = leases
        self.generator.leases = leases

    @property
    def on_event(self) -> EventSink:
        """Where domain events go (webhooks subscribe here)."""
        return self.generator.on_event

    @on_event.setter
    def on_event(self, sink: EventSink) -> None:
        self.preparer.on_event = sink
        self.generator.on_event = sink
        self.leases.on_event = sink

    async def prepare(self, request: TurnRequest) -> Turn:
        """Admit the turn, store its question and a pending reply, build its prompt."""
        text = None if request.regenerate is not None else request.text
        await self.admission.admit(request.rate_key or request.owner_id, text, request.extra_limits)
        return await self.preparer.prepare(request, request.profile or self.default_profile)

    def events(self, turn: Turn) -> AsyncIterator[TurnEvent]:
        """Stream a prepared turn: start, deltas, usage, then done or error."""
        return self.generator.events(turn)

    async def complete(self, turn: Turn) -> TurnResult:
        """Run a prepared turn to the end; a provider failure raises `ProviderFailed`."""
        async for event in self.events(turn):
            if event.event == "error":
                cause: LLMError = event.data["cause"]
                raise ProviderFailed(cause.message, cause=cause, details=turn.ids())
        return self.result(turn)

    @staticmethod
    def result(turn: Turn) -> TurnResult:
        """The turn as it stands, for an entry point to render."""
        return TurnResult(turn.conversation_id, turn.title, turn.mode, turn.user, turn.assistant)

    async def drain(self) -> None:
        """Wait for background work (summaries, titles) to finish."""
        await self.followups.drain()
