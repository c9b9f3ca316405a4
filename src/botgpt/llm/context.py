"""The context builder: what goes into a prompt within a token budget, and why.

Priority, highest first: the system prompt, the newest message (the user's
question), the grounding block, the running summary (only when history had to
be dropped), then as much history as fits, newest first. The prompt's order is
system prompt, grounding, summary (all `system` messages, at the start because
many chat templates reject system messages later on), history, newest message.
The result never exceeds the budget; the manifest records every item and its
tokens so a turn can be explained later, and `dropped` / `unsummarized` tell
the caller which messages to fold into the running summary (`refresh_summary`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, cast

from botgpt.llm.base import ChatMessage, ChatRequest, LLMProvider, Role
from botgpt.llm.errors import LLMError
from botgpt.llm.tokens import (
    MESSAGE_OVERHEAD_TOKENS,
    REPLY_PRIMING_TOKENS,
    TokenCounter,
    get_counter,
    message_tokens,
    truncate_end,
    truncate_middle,
)

#: The seeds' rule: history is trimmed once a prompt would pass this many tokens.
DEFAULT_TRIM_ABOVE = 4000
#: How the running summary is introduced to the model.
SUMMARY_PREFIX = "Summary of earlier conversation: "
MANIFEST_VERSION = 1

_ROLES: frozenset[str] = frozenset({"system", "user", "assistant"})


class HistoryItem(Protocol):
    """A stored message as the builder needs it (the ORM `Message` fits)."""

    @property
    def id(self) -> str:
        """The message's id."""
        ...

    @property
    def role(self) -> str:
        """`user`, `assistant` or `system`."""
        ...

    @property
    def content(self) -> str:
        """The message's text."""
        ...


H = TypeVar("H", bound=HistoryItem)


@dataclass(frozen=True, slots=True)
class RunningSummary:
    """A summary of earlier turns and the id of the last message it covers."""

    text: str
    last_message_id: str | None = None


@dataclass(slots=True)
class BuiltContext(Generic[H]):
    """The prompt to send, its manifest, and the history items left out."""

    messages: list[ChatMessage]
    manifest: dict[str, Any]
    dropped: list[H] = field(default_factory=list)
    #: Dropped items newer than what the running summary covers: fold these in.
    unsummarized: list[H] = field(default_factory=list)

    @property
    def total_tokens(self) -> int:
        """Tokens of `messages` as counted when building."""
        return cast(int, self.manifest["total_tokens"])


class ContextBudgetError(ValueError):
    """The budget cannot hold even the system prompt and a (truncated) newest message."""

    code = "context_budget_exceeded"


def effective_budget(
    context_window: int, reply_reserve: int, trim_above: int | None = DEFAULT_TRIM_ABOVE
) -> int:
    """The prompt budget: the model's window minus the reply reserve, capped by `trim_above`."""
    budget = context_window - reply_reserve
    if trim_above is not None:
        budget = min(budget, trim_above)
    return max(budget, 0)


def _role(item: HistoryItem) -> Role:
    role = item.role
    if role not in _ROLES:
        raise ValueError(f"message {item.id} has unsupported role {role!r}")
    return cast(Role, role)


def build_context(
    *,
    system_prompt: str,
    history: Sequence[H],
    budget: int,
    counter: TokenCounter,
    grounding: str | None = None,
    summary: RunningSummary | None = None,
    trim_above: int | None = None,
    max_messages: int | None = None,
) -> BuiltContext[H]:
    """Assemble the prompt for a turn within `min(budget, trim_above)` tokens.

    `history` is oldest first and its last item is the newest (user) message; at most
    `max_messages` of the older ones are kept (the memory window; past it, the oldest are
    dropped in a batch down to four fifths of it). Every older message
    left out, for the budget or the window, is reported in `dropped` (and in the
    manifest), so the caller can fold it into the running summary.
    Raises `ContextBudgetError` if the system prompt leaves no room for it.
    """
    if not history:
        raise ValueError("history must contain at least the newest message")
    limit = budget if trim_above is None else min(budget, trim_above)
    newest = history[-1]
    older = history[:-1]

    items: list[dict[str, Any]] = []
    used = REPLY_PRIMING_TOKENS

    system_tokens = message_tokens(counter, system_prompt)
    used += system_tokens

    # The newest message must go in; only when it cannot fit even alone is it
    # cut from the middle, keeping the start (usually the ask) and the end.
    newest_text = newest.content
    newest_tokens = message_tokens(counter, newest_text)
    newest_entry: dict[str, Any] = {"kind": "message", "id": newest.id, "role": newest.role}
    room = limit - used - MESSAGE_OVERHEAD_TOKENS
    if newest_tokens > limit - used:
        if room < 0:
            raise ContextBudgetError(
                f"budget of {limit} tokens cannot hold the system prompt ({system_tokens} tokens)"
            )
        newest_text = truncate_middle(newest_text, room, counter)
        newest_entry["truncated"] = True
        newest_entry["original_tokens"] = newest_tokens
        newest_tokens = message_tokens(counter, newest_text)
    newest_entry["tokens"] = newest_tokens
    used += newest_tokens

    # Grounding passages come ranked best-first, so a block too big keeps its head.
    grounding_text: str | None = None
    grounding_entry: dict[str, Any] | None = None
    if grounding:
        text = grounding
        g_tokens = message_tokens(counter, text)
        grounding_entry = {"kind": "grounding"}
        if g_tokens > limit - used:
            grounding_entry["truncated"] = True
            grounding_entry["original_tokens"] = g_tokens
            text = truncate_end(text, limit - used - MESSAGE_OVERHEAD_TOKENS, counter)
            g_tokens = message_tokens(counter, text) if text else 0
        if text:
            grounding_text = text
            grounding_entry["tokens"] = g_tokens
            used += g_tokens
        else:
            grounding_entry["omitted"] = True
            grounding_entry["tokens"] = 0

    # History: keep a contiguous run of the newest messages (older ones go first).
    # Costs are computed lazily newest-first, so a long history is not tokenised
    # past the point where the budget is already spent.
    costs: list[int | None] = [None] * len(older)

    def cost(index: int) -> int:
        value = costs[index]
        if value is None:
            value = costs[index] = message_tokens(counter, older[index].content)
        return value

    oldest_allowed = 0
    if max_messages is not None and len(older) > max_messages:
        # Past the window, drop a batch at once (down to a fifth below it): the messages
        # dropped are folded into the summary once per batch, not on every turn.
        keep = max(max_messages - max(1, max_messages // 5), 0)
        oldest_allowed = len(older) - keep

    def fill(room: int) -> int:
        """Index of the oldest message kept when `room` tokens are filled newest-first."""
        start = len(older)
        while start > oldest_allowed and cost(start - 1) <= room:
            start -= 1
            room -= cost(start)
        return start

    remaining = limit - used
    start = fill(remaining)
    summary_text: str | None = None
    summary_tokens = 0
    ids = {m.id: index for index, m in enumerate(history)}
    covered = None if summary is None else summary.last_message_id
    # The summary is needed when messages are dropped now, or when it covers
    # messages that the caller did not even pass (a history window).
    needs_summary = start > 0 or (covered is not None and covered not in ids)
    if summary is not None and summary.text.strip() and needs_summary:
        # Room for the summary is set aside first: it stands for everything dropped.
        text = SUMMARY_PREFIX + summary.text.strip()
        s_tokens = message_tokens(counter, text)
        if s_tokens > remaining:
            text = truncate_middle(text, remaining - MESSAGE_OVERHEAD_TOKENS, counter)
            s_tokens = message_tokens(counter, text) if text else 0
        if text:
            summary_text, summary_tokens = text, s_tokens
            start = fill(remaining - s_tokens)
    kept = list(older[start:])
    dropped = list(older[:start])
    # Dropped messages newer than the summary's last covered one still need folding in;
    # a covered id outside the history is older than all of it.
    covered_index = ids.get(covered, -1) if covered is not None else -1
    unsummarized = [m for i, m in enumerate(dropped) if i > covered_index]

    messages = [ChatMessage("system", system_prompt)]
    items.append({"kind": "system", "tokens": system_tokens})
    if grounding_text is not None:
        messages.append(ChatMessage("system", grounding_text))
    if grounding_entry is not None:
        items.append(grounding_entry)
    if summary_text is not None and summary is not None:
        messages.append(ChatMessage("system", summary_text))
        items.append(
            {
                "kind": "summary",
                "covers_through": summary.last_message_id,
                "tokens": summary_tokens,
                "text": summary_text,
            }
        )
    for index, item in enumerate(kept, start):
        messages.append(ChatMessage(_role(item), item.content))
        items.append({"kind": "message", "id": item.id, "role": item.role, "tokens": cost(index)})
    messages.append(ChatMessage(_role(newest), newest_text))
    items.append(newest_entry)

    total = REPLY_PRIMING_TOKENS + sum(int(i["tokens"]) for i in items)
    manifest: dict[str, Any] = {
        "version": MANIFEST_VERSION,
        "encoding": counter.encoding,
        "budget": limit,
        "total_tokens": total,
        "reply_priming_tokens": REPLY_PRIMING_TOKENS,
        "items": items,
        "dropped_message_ids": [m.id for m in dropped],
    }
    return BuiltContext(
        messages=messages,
        manifest=manifest,
        dropped=dropped,
        unsummarized=unsummarized,
    )


# --- running summary ---------------------------------------------------------

SUMMARY_INSTRUCTIONS = (
    "You maintain a running summary of a conversation between a user and an assistant. "
    "Update the summary with the new messages below. Keep facts, names, numbers, "
    "decisions, the user's preferences and open questions; drop pleasantries. "
    "Write plain prose in the third person, at most {words} words. "
    "Reply with the updated summary only."
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_FALLBACK_SENTENCE_CHARS = 200


def _first_sentence(text: str) -> str:
    """The first sentence of `text`, shortened to a readable length."""
    flat = " ".join(text.split())
    sentence = _SENTENCE_END.split(flat, maxsplit=1)[0]
    if len(sentence) > _FALLBACK_SENTENCE_CHARS:
        sentence = sentence[: _FALLBACK_SENTENCE_CHARS - 1].rstrip() + "…"
    return sentence


def fallback_summary(
    previous_summary: str | None,
    dropped_messages: Sequence[HistoryItem],
    max_tokens: int,
    counter: TokenCounter,
) -> str:
    """A deterministic summary without a model: the old one plus each turn's first sentence."""
    parts = [previous_summary.strip()] if previous_summary and previous_summary.strip() else []
    for message in dropped_messages:
        sentence = _first_sentence(message.content)
        if sentence:
            parts.append(f"{message.role.capitalize()}: {sentence}")
    return truncate_middle("\n".join(parts), max_tokens, counter, marker="\n...\n")


async def refresh_summary(
    provider: LLMProvider,
    previous_summary: str | None,
    dropped_messages: Sequence[HistoryItem],
    max_tokens: int,
    *,
    counter: TokenCounter | None = None,
) -> str:
    """Fold `dropped_messages` into the running summary with the model, or a fallback.

    Only the newly dropped turns are sent, with the previous summary, so the cost
    per refresh stays small. Provider failures (`LLMError`) fall back to
    `fallback_summary`; the result never exceeds `max_tokens`.
    """
    counter = counter or get_counter(provider.model)
    if not dropped_messages:
        return truncate_middle(previous_summary or "", max_tokens, counter)
    instructions = SUMMARY_INSTRUCTIONS.format(words=max(20, int(max_tokens * 0.7)))
    transcript = "\n\n".join(f"{m.role.capitalize()}: {m.content}" for m in dropped_messages)
    # Keep the request inside the model's window: the reply, the instructions and
    # the previous summary come first, and the transcript is cut in the middle.
    prior = previous_summary.strip() if previous_summary else ""
    fixed = (
        REPLY_PRIMING_TOKENS
        + message_tokens(counter, instructions)
        + message_tokens(counter, prior)
        + MESSAGE_OVERHEAD_TOKENS
        + 32  # labels of the user message below
    )
    room = provider.context_window - max_tokens - fixed
    transcript = truncate_middle(transcript, max(room, 0), counter)
    prompt = (
        f"Current summary:\n{prior or '(none yet)'}\n\n"
        f"New messages:\n{transcript}\n\nUpdated summary:"
    )
    request = ChatRequest(
        messages=[ChatMessage("system", instructions), ChatMessage("user", prompt)],
        max_tokens=max_tokens,
        temperature=0.0,
    )
    try:
        result = await provider.complete(request)
    except LLMError:
        return fallback_summary(previous_summary, dropped_messages, max_tokens, counter)
    text = result.text.strip()
    if not text:
        return fallback_summary(previous_summary, dropped_messages, max_tokens, counter)
    return truncate_end(text, max_tokens, counter, marker="…")


class Summarizer:
    """Keeps a conversation's running summary up to date with one provider."""

    def __init__(
        self, provider: LLMProvider, max_tokens: int = 300, counter: TokenCounter | None = None
    ) -> None:
        self.provider = provider
        self.max_tokens = max_tokens
        self.counter = counter or get_counter(provider.model)

    async def refresh(
        self, previous_summary: str | None, dropped_messages: Sequence[HistoryItem]
    ) -> str:
        """The running summary with `dropped_messages` folded in."""
        return await refresh_summary(
            self.provider,
            previous_summary,
            dropped_messages,
            self.max_tokens,
            counter=self.counter,
        )
