"""The support check of a grounded reply, a step of generation (docs/architecture.md).

While the model writes, the passages' sentences are embedded; when it is done, each sentence
of the reply is scored against them and the profile's policy applies: `annotate` marks what
the sources do not back, `strict` drops it (or answers with quotes from the sources when
nothing is left) and holds the text back until it is checked, `off` skips the check. When the
provider fails before writing anything, a grounded turn answers with quotes instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from botgpt.conversations.records import Turn
from botgpt.retrieval.answer_policy import CheckedAnswer, apply_policy
from botgpt.retrieval.embedders import Embedder
from botgpt.retrieval.extractive import Passage, extractive_answer
from botgpt.retrieval.support import PreparedPassages, check_support, prepare_passages


@dataclass(slots=True)
class SupportRun:
    """The check of one reply: passages being prepared, then the verdict."""

    embedder: Embedder
    policy: str
    not_found: str
    passages: list[Passage]
    question: str
    prepared: asyncio.Task[PreparedPassages] = field(init=False)

    def __post_init__(self) -> None:
        self.prepared = asyncio.get_running_loop().create_task(
            prepare_passages(self.passages, self.embedder, question=self.question)
        )

    @property
    def buffered(self) -> bool:
        """Whether the reply is held back until checked (strict: nothing unchecked is shown)."""
        return self.policy == "strict"

    async def check(self, text: str) -> CheckedAnswer:
        """The reply as the reader gets it under the policy, with the per-sentence record."""
        report = await check_support(text, await self.prepared, self.embedder)
        return apply_policy(text, report, self.policy, not_found=self.not_found)  # type: ignore[arg-type]

    async def quotes(self) -> tuple[str, dict[str, Any]] | None:
        """An answer quoted from the passages (no model), and its record; None if none."""
        answer = await extractive_answer(self.question, self.passages, self.embedder)
        if answer is None:
            return None
        return answer.text, {
            "policy": self.policy,
            "extractive": True,
            "reason": "provider_unavailable",
            "quotes": [q.as_dict() for q in answer.quotes],
        }

    def cancel(self) -> None:
        """Stop preparing (the turn ended without a reply to check)."""
        if not self.prepared.done():
            self.prepared.cancel()
        else:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                self.prepared.exception()


class SupportChecker:
    """Starts the check of grounded replies whose profile asks for one."""

    def __init__(self, embedder: Embedder | None) -> None:
        self.embedder = embedder

    def begin(self, turn: Turn) -> SupportRun | None:
        """A check for this turn, or None (open turn, no sources, a canned reply, policy off)."""
        policy = turn.profile.grounding.support_policy
        grounding = turn.grounding
        if self.embedder is None or policy == "off" or turn.canned is not None:
            return None
        if grounding is None or not grounding.sources:
            return None
        passages = [Passage.from_hit(s.number, s.hit, s.filename) for s in grounding.sources]
        return SupportRun(
            self.embedder,
            policy,
            turn.profile.grounding.not_found_message,
            passages,
            turn.user.content,
        )
