"""Token counting: exact offline encodings, the prompt formula, the fallback, truncation."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botgpt.llm import tokens
from botgpt.llm.base import ChatMessage
from botgpt.llm.tokens import (
    CL100K,
    MESSAGE_OVERHEAD_TOKENS,
    O200K,
    REPLY_PRIMING_TOKENS,
    BpeCounter,
    HeuristicCounter,
    TokenCounter,
    encoding_for_model,
    get_counter,
    message_tokens,
    truncate_end,
    truncate_middle,
)


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", O200K),
        ("gpt-4o-mini-2024-07-18", O200K),
        ("chatgpt-4o-latest", O200K),
        ("gpt-4.1-nano", O200K),
        ("gpt-5", O200K),
        ("o1-preview", O200K),
        ("o3-mini", O200K),
        ("o4-mini", O200K),
        ("openai/gpt-4o", O200K),
        ("ft:gpt-4o-mini:acme::abc", O200K),
        ("GPT-4O", O200K),
        ("gpt-4", CL100K),
        ("gpt-4-turbo", CL100K),
        ("gpt-3.5-turbo", CL100K),
        ("llama-3.1-8b-instant", CL100K),
        ("claude-3-5-sonnet", CL100K),
        ("", CL100K),
    ],
)
def test_encoding_for_model(model: str, encoding: str) -> None:
    assert encoding_for_model(model) == encoding


def test_get_counter_is_real_and_shared() -> None:
    a = get_counter("gpt-4o")
    assert isinstance(a, BpeCounter)
    assert isinstance(a, TokenCounter)
    assert a.encoding == O200K
    assert get_counter("gpt-4o-mini") is a
    assert get_counter("gpt-4").encoding == CL100K
    assert get_counter("gpt-4") is not a


@pytest.mark.parametrize(
    ("encoding", "text", "expected"),
    [
        # Reference values from OpenAI's tiktoken for the same encodings.
        (CL100K, "hello world", 2),
        (O200K, "hello world", 2),
        (CL100K, "<|endoftext|>", 7),  # special tokens in user text count as plain text
        (CL100K, "", 0),
        (O200K, "", 0),
    ],
)
def test_known_counts(encoding: str, text: str, expected: int) -> None:
    counter = tokens._counter_for_encoding(encoding)
    assert counter.count(text) == expected


def test_encodings_differ_where_they_should() -> None:
    russian = "Привет, как дела? Это тестовое сообщение на русском языке. " * 5
    # o200k has a much larger multilingual vocabulary than cl100k.
    assert get_counter("gpt-4o").count(russian) < get_counter("gpt-4").count(russian)


def test_count_is_stable_and_cached() -> None:
    counter = get_counter("gpt-4o")
    text = "The same message is recounted on every turn of a conversation."
    first = counter.count(text)
    assert all(counter.count(text) == first for _ in range(5))
    long_text = "word " * 9_999 + "word"  # above the cache's size limit, still counted
    assert counter.count(long_text) == 10_000


def test_lone_surrogates_do_not_raise() -> None:
    assert get_counter("gpt-4o").count("broken \ud800 escape") > 0


def test_count_messages_formula() -> None:
    counter = get_counter("gpt-4o")
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "hello world")]
    expected = REPLY_PRIMING_TOKENS + sum(
        counter.count(m.content) + MESSAGE_OVERHEAD_TOKENS for m in messages
    )
    assert counter.count_messages(messages) == expected
    assert message_tokens(counter, "hello world") == 2 + MESSAGE_OVERHEAD_TOKENS
    assert counter.count_messages([]) == 0


def test_no_network_is_needed() -> None:
    """Fresh interpreter with sockets disabled: both encodings still load and count."""
    code = textwrap.dedent(
        """
        import socket

        def refuse(*args, **kwargs):
            raise OSError("network disabled in this test")

        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse

        from botgpt.llm.tokens import BpeCounter, get_counter

        for model in ("gpt-4o", "gpt-4"):
            counter = get_counter(model)
            assert isinstance(counter, BpeCounter), counter
            assert counter.count("hello world") == 2
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_heuristic_used_when_package_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    def clear() -> None:
        tokens._counter_for_encoding.cache_clear()
        tokens._load_bindings.cache_clear()

    clear()
    # None entries in sys.modules make the package unfindable and its import fail.
    monkeypatch.setitem(sys.modules, "bpe_openai", None)
    monkeypatch.setitem(sys.modules, "bpe_openai._bindings", None)
    try:
        counter = get_counter("gpt-4o")
        assert isinstance(counter, HeuristicCounter)
        assert counter.encoding == "heuristic"
    finally:
        clear()
        monkeypatch.undo()
    assert isinstance(get_counter("gpt-4o"), BpeCounter)


@pytest.mark.parametrize(
    "text",
    [
        "The quick brown fox jumps over the lazy dog, again and again. " * 20,
        "def foo(x: int) -> int:\n    return {k: v for k, v in zip(range(x), 'ab')}\n" * 10,
        "東京は日本の首都です。人口は約1400万人です。" * 10,
        "12345 67890 " * 50,
    ],
)
def test_heuristic_is_in_the_right_range(text: str) -> None:
    real = get_counter("gpt-4").count(text)
    guess = HeuristicCounter().count(text)
    assert 0.6 * real <= guess <= 1.6 * real


def test_heuristic_counts_messages() -> None:
    counter = HeuristicCounter()
    assert counter.count("") == 0
    assert counter.count("hi") == 1
    assert counter.count_messages([ChatMessage("user", "hi")]) == (
        REPLY_PRIMING_TOKENS + MESSAGE_OVERHEAD_TOKENS + 1
    )


def test_truncate_middle_keeps_both_ends() -> None:
    counter = get_counter("gpt-4o")
    text = "START " + "filler words here " * 500 + " END"
    cut = truncate_middle(text, 60, counter)
    assert counter.count(cut) <= 60
    assert cut.startswith("START")
    assert cut.endswith("END")
    assert "[... truncated ...]" in cut
    # Close to the limit, not wastefully short.
    assert counter.count(cut) >= 50


def test_truncate_end_keeps_the_head() -> None:
    counter = get_counter("gpt-4o")
    text = "[1] best passage. " + "more context " * 500
    cut = truncate_end(text, 40, counter)
    assert counter.count(cut) <= 40
    assert cut.startswith("[1] best passage.")
    assert cut.endswith("[... truncated ...]")


def test_truncate_leaves_short_text_alone_and_handles_tiny_limits() -> None:
    counter = get_counter("gpt-4o")
    assert truncate_middle("short", 10, counter) == "short"
    assert truncate_end("short", 10, counter) == "short"
    assert truncate_middle("a much longer text than that", 0, counter) == ""
    assert truncate_middle("a much longer text than that " * 10, 2, counter) == ""


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=2000), limit=st.integers(min_value=-5, max_value=400))
def test_truncation_never_exceeds_the_limit(text: str, limit: int) -> None:
    counter = get_counter("gpt-4o")
    for cut in (truncate_middle(text, limit, counter), truncate_end(text, limit, counter)):
        assert counter.count(cut) <= max(limit, 0)
        if counter.count(text) <= limit:
            assert cut == text
