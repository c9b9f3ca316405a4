"""The context builder and the running summary."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from botgpt.llm.base import ChatChunk, ChatRequest, LLMProvider
from botgpt.llm.context import (
    DEFAULT_TRIM_ABOVE,
    SUMMARY_PREFIX,
    BuiltContext,
    ContextBudgetError,
    RunningSummary,
    Summarizer,
    build_context,
    effective_budget,
    fallback_summary,
    refresh_summary,
)
from botgpt.llm.errors import LLMError, ProviderTimeout
from botgpt.llm.tokens import MESSAGE_OVERHEAD_TOKENS, TokenCounter, get_counter

COUNTER = get_counter("gpt-4o")
SYSTEM = "You are a helpful assistant."


@dataclass(frozen=True)
class Msg:
    """A stored message as the builder sees it."""

    id: str
    role: str
    content: str


def conversation(turns: int, words: int = 30) -> list[Msg]:
    """Alternating user/assistant messages, oldest first, ending with a user message."""
    out: list[Msg] = []
    for n in range(turns * 2 + 1):
        role = "user" if n % 2 == 0 else "assistant"
        out.append(Msg(f"m{n}", role, f"message {n} " + "lorem ipsum " * words))
    return out


def kinds(built: BuiltContext[Msg]) -> list[str]:
    return [item["kind"] for item in built.manifest["items"]]


def check_invariants(built: BuiltContext[Msg], history: Sequence[Msg], budget: int) -> None:
    """What must hold for every built context."""
    total = built.manifest["total_tokens"]
    assert total <= budget
    # The manifest's accounting is the counter's own view of the prompt.
    assert COUNTER.count_messages(built.messages) == total
    json.dumps(built.manifest)  # stored as JSON on the assistant message
    older = list(history[:-1])
    kept_ids = [i["id"] for i in built.manifest["items"] if i["kind"] == "message"][:-1]
    # Kept history is the newest contiguous run, in the original order.
    assert kept_ids == [m.id for m in older[len(older) - len(kept_ids) :]]
    assert [m.id for m in built.dropped] == [m.id for m in older[: len(older) - len(kept_ids)]]
    assert built.manifest["dropped_message_ids"] == [m.id for m in built.dropped]
    newest = built.manifest["items"][-1]
    assert newest["id"] == history[-1].id
    assert built.messages[-1].role == history[-1].role
    if not newest.get("truncated"):
        assert built.messages[-1].content == history[-1].content
    assert built.messages[0].role == "system"
    assert built.messages[0].content == SYSTEM


def test_everything_fits() -> None:
    history = conversation(3)
    built = build_context(system_prompt=SYSTEM, history=history, budget=4000, counter=COUNTER)
    check_invariants(built, history, 4000)
    assert [m.content for m in built.messages[1:]] == [m.content for m in history]
    assert built.dropped == []
    assert kinds(built) == ["system"] + ["message"] * len(history)
    assert built.total_tokens == built.manifest["total_tokens"]
    assert built.manifest["budget"] == 4000
    assert built.manifest["encoding"] == COUNTER.encoding


def test_oldest_messages_are_dropped_first() -> None:
    history = conversation(20)
    built = build_context(system_prompt=SYSTEM, history=history, budget=600, counter=COUNTER)
    check_invariants(built, history, 600)
    assert built.dropped
    assert built.dropped[0].id == "m0"
    assert "summary" not in kinds(built)  # none was given
    assert built.unsummarized == built.dropped
    # The budget is used well: one more message would not have fitted.
    next_cost = COUNTER.count(built.dropped[-1].content) + MESSAGE_OVERHEAD_TOKENS
    assert built.total_tokens + next_cost > 600


def test_summary_is_used_when_messages_are_dropped() -> None:
    history = conversation(20)
    summary = RunningSummary("The user is planning a trip to Lisbon in May.", "m5")
    built = build_context(
        system_prompt=SYSTEM, history=history, budget=600, counter=COUNTER, summary=summary
    )
    check_invariants(built, history, 600)
    assert kinds(built)[:2] == ["system", "summary"]
    assert built.messages[1].role == "system"
    assert built.messages[1].content == SUMMARY_PREFIX + summary.text
    summary_item = built.manifest["items"][1]
    assert summary_item["covers_through"] == "m5"
    assert summary_item["tokens"] == COUNTER.count(built.messages[1].content) + 4
    # Only dropped messages after m5 still need folding into the summary.
    assert [m.id for m in built.unsummarized] == [m.id for m in built.dropped if int(m.id[1:]) > 5]


def test_summary_is_left_out_when_nothing_is_dropped() -> None:
    history = conversation(2)
    built = build_context(
        system_prompt=SYSTEM,
        history=history,
        budget=4000,
        counter=COUNTER,
        summary=RunningSummary("Old stuff.", "m0"),
    )
    assert "summary" not in kinds(built)


def test_summary_of_messages_outside_the_window_is_used() -> None:
    # The caller passed only a recent window; the summary covers older messages.
    history = conversation(2)
    built = build_context(
        system_prompt=SYSTEM,
        history=history,
        budget=4000,
        counter=COUNTER,
        summary=RunningSummary("Earlier the user asked about invoices.", "older-id"),
    )
    check_invariants(built, history, 4000)
    assert kinds(built)[1] == "summary"
    assert built.dropped == []


def test_oversized_summary_is_cut_to_fit() -> None:
    history = conversation(20)
    summary = RunningSummary("A very long summary sentence. " * 400, "m3")
    built = build_context(
        system_prompt=SYSTEM, history=history, budget=500, counter=COUNTER, summary=summary
    )
    check_invariants(built, history, 500)
    assert "summary" in kinds(built)
    assert built.manifest["total_tokens"] <= 500


def test_newest_message_is_truncated_only_when_it_alone_does_not_fit() -> None:
    huge = Msg("q", "user", "BEGIN " + "please read all of this " * 2000 + " END?")
    history = [*conversation(2)[:-1], huge]
    built = build_context(system_prompt=SYSTEM, history=history, budget=300, counter=COUNTER)
    check_invariants(built, history, 300)
    item = built.manifest["items"][-1]
    assert item["truncated"] is True
    assert item["original_tokens"] > 300
    content = built.messages[-1].content
    assert content.startswith("BEGIN") and content.endswith("END?")
    assert built.dropped == list(history[:-1])
    # Nearly all of the budget is used by the truncated question.
    assert built.total_tokens >= 280


def test_system_prompt_too_big_for_the_budget() -> None:
    with pytest.raises(ContextBudgetError):
        build_context(
            system_prompt="rules " * 500, history=conversation(1), budget=100, counter=COUNTER
        )


def test_grounding_goes_in_after_the_system_prompt() -> None:
    history = conversation(2)
    grounding = "[1] The refund window is 30 days.\n[2] Shipping is free over 50 EUR."
    built = build_context(
        system_prompt=SYSTEM, history=history, budget=4000, counter=COUNTER, grounding=grounding
    )
    check_invariants(built, history, 4000)
    assert kinds(built)[:2] == ["system", "grounding"]
    assert built.messages[1].content == grounding
    assert built.messages[1].role == "system"


def test_grounding_too_big_keeps_its_best_passages() -> None:
    history = conversation(5)
    grounding = "[1] best passage first.\n" + "[n] less relevant text. " * 2000
    built = build_context(
        system_prompt=SYSTEM, history=history, budget=800, counter=COUNTER, grounding=grounding
    )
    check_invariants(built, history, 800)
    item = built.manifest["items"][1]
    assert item["kind"] == "grounding" and item["truncated"] is True
    assert built.messages[1].content.startswith("[1] best passage first.")
    # Grounding outranks history: everything older than the question is dropped.
    assert len(built.dropped) == len(history) - 1


def test_grounding_is_omitted_when_no_room_is_left() -> None:
    question = Msg("q", "user", "tell me " * 3000)
    built = build_context(
        system_prompt=SYSTEM,
        history=[question],
        budget=200,
        counter=COUNTER,
        grounding="[1] passage " * 50,
    )
    check_invariants(built, [question], 200)
    item = built.manifest["items"][1]
    assert item == {
        "kind": "grounding",
        "truncated": True,
        "original_tokens": item["original_tokens"],
        "omitted": True,
        "tokens": 0,
    }
    assert len(built.messages) == 2


def test_trim_above_caps_the_budget() -> None:
    history = conversation(60)
    built = build_context(
        system_prompt=SYSTEM,
        history=history,
        budget=128_000,
        counter=COUNTER,
        trim_above=DEFAULT_TRIM_ABOVE,
    )
    check_invariants(built, history, DEFAULT_TRIM_ABOVE)
    assert built.manifest["budget"] == DEFAULT_TRIM_ABOVE
    assert built.dropped


def test_effective_budget() -> None:
    assert effective_budget(8192, 512) == DEFAULT_TRIM_ABOVE
    assert effective_budget(4096, 512) == 3584
    assert effective_budget(128_000, 4096, trim_above=None) == 123_904
    assert effective_budget(100, 512) == 0


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        build_context(system_prompt=SYSTEM, history=[], budget=100, counter=COUNTER)
    with pytest.raises(ValueError, match="role"):
        build_context(
            system_prompt=SYSTEM,
            history=[Msg("x", "tool", "hi")],
            budget=100,
            counter=COUNTER,
        )


words = st.sampled_from(
    [
        "the",
        "a",
        "budget",
        "token",
        "summary",
        "café",
        "東京",
        "🙂",
        "42",
        "3.14",
        "don't\n",
        "refund",
        "order",
        "ship",
    ]
)
contents = st.one_of(
    st.lists(words, max_size=120).map(" ".join),
    st.text(max_size=300),
)


@st.composite
def histories(draw: st.DrawFn) -> list[Msg]:
    n = draw(st.integers(min_value=1, max_value=80))
    texts = draw(st.lists(contents, min_size=n, max_size=n))
    return [
        Msg(f"m{i}", "user" if (n - 1 - i) % 2 == 0 else "assistant", text)
        for i, text in enumerate(texts)
    ]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history=histories(),
    budget=st.integers(min_value=60, max_value=3000),
    summary_text=st.one_of(st.none(), contents.filter(lambda s: bool(s.strip()))),
    grounding=st.one_of(st.none(), contents),
)
def test_property_never_over_budget(
    history: list[Msg], budget: int, summary_text: str | None, grounding: str | None
) -> None:
    summary = None if summary_text is None else RunningSummary(summary_text, "m0")
    built = build_context(
        system_prompt=SYSTEM,
        history=history,
        budget=budget,
        counter=COUNTER,
        summary=summary,
        grounding=grounding,
    )
    check_invariants(built, history, budget)
    has_summary = "summary" in kinds(built)
    event(f"dropped={bool(built.dropped)} summary_given={summary is not None}")
    event(f"newest truncated={bool(built.manifest['items'][-1].get('truncated'))}")
    if summary is None or not built.dropped:
        assert not has_summary
    else:
        # The summary stands in for dropped messages unless the system prompt,
        # question and grounding left no room even for a cut-down summary.
        fixed = (
            sum(
                i["tokens"] for i in built.manifest["items"] if i["kind"] in {"system", "grounding"}
            )
            + built.manifest["items"][-1]["tokens"]
        )
        assert has_summary or budget - fixed - 3 < 20


# --- running summary ---------------------------------------------------------


class ScriptedProvider(LLMProvider):
    """Answers with queued texts or raises queued errors; records requests."""

    name = "scripted"
    model = "gpt-4o-mini"

    def __init__(self, *replies: str | Exception, context_window: int = 8192) -> None:
        self.replies = list(replies)
        self.requests: list[ChatRequest] = []
        self.context_window = context_window

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        self.requests.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        for start in range(0, len(reply), 7):
            yield ChatChunk(delta=reply[start : start + 7])
        yield ChatChunk(finish_reason="stop")


DROPPED = [
    Msg("m1", "user", "I want to fly to Lisbon in May. My budget is 800 EUR."),
    Msg("m2", "assistant", "Great choice! May is lovely there. Do you prefer mornings?"),
]


async def test_refresh_summary_asks_the_model_incrementally() -> None:
    provider = ScriptedProvider("  The user plans a May trip to Lisbon on 800 EUR.  ")
    text = await refresh_summary(provider, "The user greeted the assistant.", DROPPED, 200)
    assert text == "The user plans a May trip to Lisbon on 800 EUR."
    (request,) = provider.requests
    assert request.max_tokens == 200
    assert request.messages[0].role == "system"
    prompt = request.messages[-1].content
    assert "The user greeted the assistant." in prompt
    assert "User: I want to fly to Lisbon in May." in prompt
    assert "Assistant: Great choice!" in prompt


async def test_refresh_summary_falls_back_on_provider_errors() -> None:
    provider = ScriptedProvider(ProviderTimeout("slow"))
    text = await refresh_summary(provider, "Earlier: greetings.", DROPPED, 200)
    assert text == (
        "Earlier: greetings.\nUser: I want to fly to Lisbon in May.\nAssistant: Great choice!"
    )
    # Deterministic: the same input gives the same fallback.
    again = await refresh_summary(
        ScriptedProvider(LLMError("x")), "Earlier: greetings.", DROPPED, 200
    )
    assert again == text


async def test_refresh_summary_falls_back_on_an_empty_reply() -> None:
    text = await refresh_summary(ScriptedProvider("   "), None, DROPPED, 200)
    assert text.startswith("User: I want to fly to Lisbon in May.")


async def test_other_errors_are_not_swallowed() -> None:
    with pytest.raises(RuntimeError):
        await refresh_summary(ScriptedProvider(RuntimeError("bug")), None, DROPPED, 200)


async def test_refresh_summary_respects_max_tokens() -> None:
    rambling = "The user said many things. " * 200
    text = await refresh_summary(ScriptedProvider(rambling), None, DROPPED, 50)
    assert COUNTER.count(text) <= 50
    fallback = await refresh_summary(ScriptedProvider(ProviderTimeout("x")), rambling, DROPPED, 50)
    assert COUNTER.count(fallback) <= 50


async def test_refresh_summary_keeps_the_request_inside_the_window() -> None:
    huge = [Msg("m9", "user", "blah " * 20_000)]
    provider = ScriptedProvider("short", context_window=2048)
    assert await refresh_summary(provider, None, huge, 256) == "short"
    prompt_tokens = COUNTER.count_messages(provider.requests[0].messages)
    assert prompt_tokens + 256 <= 2048


async def test_refresh_summary_with_nothing_new() -> None:
    provider = ScriptedProvider()
    assert await refresh_summary(provider, "Kept as is.", [], 100) == "Kept as is."
    assert provider.requests == []


async def test_summarizer_helper() -> None:
    summarizer = Summarizer(ScriptedProvider("Trip to Lisbon."), max_tokens=64)
    assert isinstance(summarizer.counter, TokenCounter)
    assert await summarizer.refresh(None, DROPPED) == "Trip to Lisbon."


def test_fallback_summary_shortens_long_sentences() -> None:
    long = Msg("m1", "user", "word " * 100)
    text = fallback_summary(None, [long], 500, COUNTER)
    assert text.startswith("User: word word")
    assert text.endswith("…")
    assert len(text) <= 210


async def test_summary_round_trip_with_the_builder() -> None:
    """A turn drops messages, the summary absorbs them, the next turn uses it."""
    history = conversation(15)
    first = build_context(system_prompt=SYSTEM, history=history, budget=500, counter=COUNTER)
    provider = ScriptedProvider("The user and assistant exchanged lorem ipsum.")
    text = await refresh_summary(provider, None, first.unsummarized, 100)
    summary = RunningSummary(text, first.unsummarized[-1].id)
    second = build_context(
        system_prompt=SYSTEM, history=history, budget=500, counter=COUNTER, summary=summary
    )
    check_invariants(second, history, 500)
    assert "summary" in kinds(second)
    # Room for the summary costs history: the summary now also needs what it pushed out.
    assert [m.id for m in second.unsummarized] == [
        m.id for m in second.dropped if m not in first.dropped
    ]
