"""The turn profile: who the assistant is on one turn (persona, model, memory, grounding).

Every turn receives a profile. The app's default profile is built from settings; a bot
builds its own from its stored configuration (`botgpt.bots.profiles`). Nothing in the
turn pipeline reads persona settings from anywhere else, so a new kind of assistant only
has to build a profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from botgpt.config import Settings
from botgpt.llm.pool import ProviderChoice


@dataclass(frozen=True, slots=True)
class GroundingProfile:
    """How a grounded turn finds and uses passages."""

    top_k: int = 5
    min_score: float | None = None  # None: the search's configured relevance floor
    not_found_message: str = (
        "I could not find this in your documents, so I cannot answer it from them."
    )
    faq_first: bool = False  # answer from the owner's FAQs when one matches
    faq_threshold: float = 0.75
    # Each sentence of a grounded reply checked against its sources: annotate | strict | off.
    support_policy: str = "off"


@dataclass(frozen=True, slots=True)
class TurnProfile:
    """Persona and model settings of one turn."""

    system_prompt: str
    provider: ProviderChoice = field(default_factory=ProviderChoice)
    temperature: float = 0.7
    max_tokens: int = 512
    memory_messages: int = 50  # past messages sent at most; older ones live in the summary
    context_max_tokens: int = 4000
    grounding: GroundingProfile = field(default_factory=GroundingProfile)
    model_titles: bool = False  # let the model write the conversation's title
    answer_cache: bool = False  # answer a repeated first question from the answer cache
    bot_id: str | None = None
    bot_version: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TurnProfile:
        """The app's default assistant."""
        return cls(
            system_prompt=settings.default_system_prompt,
            provider=ProviderChoice(),  # the configured chain with its own model
            temperature=settings.llm_temperature,
            max_tokens=settings.llm_max_tokens,
            memory_messages=settings.history_max_messages,
            context_max_tokens=settings.context_max_tokens,
            grounding=GroundingProfile(
                top_k=settings.grounded_top_k,
                min_score=None,
                not_found_message=settings.grounded_not_found_message,
                support_policy=settings.support_policy,
            ),
            # The embedded 135M model writes nonsense titles; others may write them.
            model_titles=settings.llm_titles and settings.llm_provider != "local",
            answer_cache=settings.answer_cache,
        )
