"""A bot's turn profile: its persona, its own provider and key, memory and grounding."""

from __future__ import annotations

from botgpt.bots.directory import BotSnapshot
from botgpt.bots.secrets import SecretBox
from botgpt.config import Settings
from botgpt.conversations.profile import GroundingProfile, TurnProfile
from botgpt.llm.pool import ProviderChoice


def bot_profile(bot: BotSnapshot, settings: Settings, box: SecretBox) -> TurnProfile:
    """The profile every turn of `bot` runs with (its key decrypted for the provider only)."""
    key = box.decrypt(bot.api_key_encrypted) if bot.api_key_encrypted else None
    return TurnProfile(
        system_prompt=bot.system_prompt,
        provider=ProviderChoice(
            kind=bot.provider, model=bot.model, base_url=bot.base_url, api_key=key
        ),
        temperature=bot.temperature,
        max_tokens=bot.max_tokens,
        memory_messages=bot.memory_messages,
        context_max_tokens=settings.context_max_tokens,
        grounding=GroundingProfile(
            top_k=bot.top_k,
            min_score=bot.min_score,
            not_found_message=settings.grounded_not_found_message,
            faq_first=bot.faq_first,
            faq_threshold=bot.faq_threshold,
            support_policy=settings.support_policy,
        ),
        model_titles=False,  # visitors' sessions are titled by their first question
        answer_cache=bot.answer_cache,
        bot_id=bot.id,
        bot_version=bot.version,
    )
