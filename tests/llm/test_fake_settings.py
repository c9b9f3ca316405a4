"""The fake provider's latency settings (used by bench/scale_out.py) are honoured."""

from __future__ import annotations

import time

from botgpt.config import Settings
from botgpt.llm.base import ChatMessage, ChatRequest
from botgpt.llm.factory import build_base_provider


async def test_fake_latency_and_token_interval_from_settings() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        llm_provider="fake",
        llm_fake_latency_seconds=0.05,
        llm_fake_token_interval_seconds=0.01,
    )
    provider = build_base_provider(settings)
    request = ChatRequest(messages=[ChatMessage(role="user", content="a" * 40)], model="fake")
    started = time.perf_counter()
    pieces = [c.delta async for c in provider.stream(request) if c.delta]
    elapsed = time.perf_counter() - started
    assert "".join(pieces) == "You said: " + "a" * 40
    # The first piece waits the latency, every piece the interval: a lower bound only.
    assert elapsed >= 0.05 + 0.01 * len(pieces)
