"""Build the configured provider chain, wrapped in the resilience layer.

Each provider of the chain (the primary from BOTGPT_LLM_*, then every entry of
BOTGPT_LLM_FALLBACKS) becomes ``RetryingProvider(BreakerProvider(raw))``, with
its own circuit breaker; the in-process model also gets a `DeadlineProvider`
because it has no network timeouts of its own. Two or more members are put in
a `FallbackProvider`. See `botgpt.llm.resilience` for why retries sit outside
the breaker.
"""

from __future__ import annotations

from botgpt.config import LLMFallback, Settings
from botgpt.llm.base import LLMProvider
from botgpt.llm.resilience import (
    BreakerProvider,
    CircuitBreaker,
    DeadlineProvider,
    FallbackProvider,
    RetryingProvider,
)

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_ANTHROPIC_BASE_URL = "https://api.anthropic.com"
DEFAULT_ANTHROPIC_MODEL = "claude-3-5-haiku-latest"


def _timeouts(settings: Settings) -> tuple[float, float, float]:
    """(connect, first token, total) seconds; neither of the first two exceeds the total."""
    total = settings.llm_timeout_seconds
    return (
        min(settings.llm_connect_timeout_seconds, total),
        min(settings.llm_first_token_timeout_seconds, total),
        total,
    )


def make_raw(
    settings: Settings,
    kind: str,
    *,
    base_url: str,
    api_key: str,
    model: str,
    name: str,
) -> LLMProvider:
    """One unwrapped provider of kind openai, anthropic or local, with the configured timeouts."""
    connect, first_token, total = _timeouts(settings)
    if kind == "openai":
        from botgpt.llm.providers.openai_compat import OpenAICompatProvider

        return OpenAICompatProvider(
            base_url=base_url or DEFAULT_OPENAI_BASE_URL,
            api_key=api_key,
            model=model or DEFAULT_OPENAI_MODEL,
            connect_timeout=connect,
            first_token_timeout=first_token,
            total_timeout=total,
            name=name or "openai",
            max_connections=settings.llm_max_connections,
        )
    if kind == "anthropic":
        from botgpt.llm.providers.anthropic import AnthropicProvider

        return AnthropicProvider(
            api_key=api_key,
            model=model or DEFAULT_ANTHROPIC_MODEL,
            base_url=base_url or DEFAULT_ANTHROPIC_BASE_URL,
            connect_timeout=connect,
            first_token_timeout=first_token,
            total_timeout=total,
            name=name or "anthropic",
            max_connections=settings.llm_max_connections,
        )
    from botgpt.llm.providers.local import LocalLlamaProvider

    local = LocalLlamaProvider(
        settings.local_model_path,
        n_ctx=settings.local_context_tokens,
        n_threads=settings.local_threads,
        n_threads_batch=settings.local_batch_threads,
        model_name=model or None,
    )
    if name:
        local.name = name
    # No network, so no connect timeout; the model load counts towards the first token.
    return DeadlineProvider(local, first_token_timeout=first_token, total_timeout=total)


def build_base_provider(settings: Settings) -> LLMProvider:
    """The raw primary provider named by BOTGPT_LLM_PROVIDER."""
    if settings.llm_provider == "fake":
        from botgpt.llm.fake import FakeProvider

        fake = FakeProvider(model=settings.llm_model or "fake-model")
        fake.default_delay = settings.llm_fake_latency_seconds
        fake.default_chunk_delay = settings.llm_fake_token_interval_seconds
        return fake
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else ""
    # Groq is an OpenAI-compatible endpoint (its URL and model default in Settings).
    kind = "openai" if settings.llm_provider == "groq" else settings.llm_provider
    return make_raw(
        settings,
        kind,
        base_url=settings.llm_base_url,  # empty: the provider's public endpoint
        api_key=key,
        model=settings.llm_model,
        name="groq" if settings.llm_provider == "groq" else "",
    )


def build_fallback_provider(settings: Settings, spec: LLMFallback) -> LLMProvider:
    """The raw provider of one BOTGPT_LLM_FALLBACKS entry."""
    return make_raw(
        settings,
        spec.provider,
        base_url=spec.base_url,
        api_key=spec.api_key.get_secret_value() if spec.api_key else "",
        model=spec.model,
        name=spec.name,
    )


def make_resilient(settings: Settings, raw: LLMProvider) -> LLMProvider:
    """Wrap one provider: retries (outside) around its own circuit breaker (inside)."""
    breaker = CircuitBreaker(
        raw.name,
        failure_threshold=settings.llm_breaker_failures,
        reset_timeout=settings.llm_breaker_reset_seconds,
    )
    return RetryingProvider(
        BreakerProvider(raw, breaker),
        attempts=settings.llm_retry_attempts,
        base_wait=settings.llm_retry_base_seconds,
        max_wait=settings.llm_retry_max_seconds,
    )


def build_provider(settings: Settings, base: LLMProvider | None = None) -> LLMProvider:
    """The configured chain with retries, breakers and fallbacks (or just `base`, wrapped)."""
    if base is not None:
        return make_resilient(settings, base)
    chain = [make_resilient(settings, build_base_provider(settings))]
    chain += [
        make_resilient(settings, build_fallback_provider(settings, spec))
        for spec in settings.llm_fallbacks
    ]
    return chain[0] if len(chain) == 1 else FallbackProvider(chain)
