"""Build the configured provider, wrapped in the resilience layer."""

from __future__ import annotations

from botgpt.config import Settings
from botgpt.llm.base import LLMProvider
from botgpt.llm.resilience import RetryingProvider


def build_base_provider(settings: Settings) -> LLMProvider:
    """The raw provider named by BOTGPT_LLM_PROVIDER."""
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else ""
    if settings.llm_provider == "fake":
        from botgpt.llm.fake import FakeProvider

        return FakeProvider(model=settings.llm_model or "fake-model")
    if settings.llm_provider == "openai":
        from botgpt.llm.providers.openai_compat import OpenAICompatProvider

        return OpenAICompatProvider(
            base_url=settings.llm_base_url,
            api_key=key,
            model=settings.llm_model or "gpt-4o-mini",
        )
    if settings.llm_provider == "anthropic":
        from botgpt.llm.providers.anthropic import AnthropicProvider

        return AnthropicProvider(api_key=key, model=settings.llm_model or "claude-3-5-haiku-latest")
    from botgpt.llm.providers.local import LocalLlamaProvider

    return LocalLlamaProvider()


def build_provider(settings: Settings, base: LLMProvider | None = None) -> LLMProvider:
    """The configured provider (or `base`) with retries."""
    return RetryingProvider(
        base or build_base_provider(settings),
        attempts=settings.llm_retry_attempts,
        base_wait=settings.llm_retry_base_seconds,
        max_wait=settings.llm_retry_max_seconds,
    )
