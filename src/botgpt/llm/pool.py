"""Providers chosen per turn (a bot's own provider, model and key), built once and reused.

The app's configured chain answers every turn that does not name a provider. A turn whose
profile names one (a bot with its own OpenAI key, say) gets that provider wrapped in the
same resilience layer (retries, its own circuit breaker) followed by the app's configured
fallbacks, built on first use and kept for later turns with the same choice.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

from botgpt.config import Settings
from botgpt.llm.base import LLMProvider
from botgpt.llm.factory import build_fallback_provider, make_raw, make_resilient
from botgpt.llm.fallback import FallbackProvider

DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class ProviderChoice:
    """Which provider answers: `default` (the app's chain) or a kind with its settings."""

    kind: str = DEFAULT  # default | local | openai | anthropic | groq
    model: str = ""
    base_url: str = ""
    api_key: str | None = field(default=None, repr=False)

    @property
    def is_default(self) -> bool:
        """Whether the app's configured chain answers."""
        return self.kind == DEFAULT

    def cache_key(self) -> tuple[str, str, str, str]:
        """Identifies the built provider without keeping the key itself as a dict key."""
        digest = hashlib.sha256((self.api_key or "").encode()).hexdigest()
        return self.kind, self.model, self.base_url, digest


class ProviderPool:
    """The default chain plus providers built for turn profiles, least recently used evicted."""

    def __init__(self, settings: Settings, default: LLMProvider, max_size: int = 64) -> None:
        self.settings = settings
        self.default = default
        self.max_size = max_size
        self._built: OrderedDict[tuple[str, str, str, str], LLMProvider] = OrderedDict()

    def get(self, choice: ProviderChoice | None) -> LLMProvider:
        """The provider for `choice` (the default chain when it names none)."""
        if choice is None or choice.is_default:
            return self.default
        key = choice.cache_key()
        found = self._built.get(key)
        if found is not None:
            self._built.move_to_end(key)
            return found
        provider = self._build(choice)
        self._built[key] = provider
        while len(self._built) > self.max_size:
            # An evicted provider may still be serving a stream: it is not closed here,
            # its connections go when it is garbage collected.
            self._built.popitem(last=False)
        return provider

    def _build(self, choice: ProviderChoice) -> LLMProvider:
        kind, base_url, model = choice.kind, choice.base_url, choice.model
        if kind == "groq":
            from botgpt.config import GROQ_BASE_URL, GROQ_DEFAULT_MODEL

            kind, base_url, model = "openai", base_url or GROQ_BASE_URL, model or GROQ_DEFAULT_MODEL
        key = choice.api_key or self._settings_key(choice.kind)
        raw = make_raw(
            self.settings, kind, base_url=base_url, api_key=key, model=model, name=choice.kind
        )
        chain = [make_resilient(self.settings, raw)]
        chain += [
            make_resilient(self.settings, build_fallback_provider(self.settings, spec))
            for spec in self.settings.llm_fallbacks
        ]
        return chain[0] if len(chain) == 1 else FallbackProvider(chain)

    def _settings_key(self, kind: str) -> str:
        """The operator's key for this provider kind, when the choice brings none."""
        own = getattr(self.settings, f"{kind}_api_key", None)
        if own is not None:
            return str(own.get_secret_value())
        if kind == self.settings.llm_provider and self.settings.llm_api_key is not None:
            return self.settings.llm_api_key.get_secret_value()
        return ""

    async def aclose(self) -> None:
        """Close every provider built here (the default chain is closed by its owner)."""
        for provider in self._built.values():
            await provider.aclose()
        self._built.clear()
