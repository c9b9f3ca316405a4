"""Moderation of what users send, before it is stored or reaches the model.

A `Moderator` has one method, `check(text)`. Three are built in, chosen by
`BOTGPT_MODERATION`: `off` (the default), `blocklist` (words and phrases from settings,
matched as whole words, case-insensitively: offline and instant) and `openai` (any
OpenAI-compatible `/moderations` endpoint, e.g. OpenAI's omni-moderation model). A flagged
message is refused with `ContentFlagged` and nothing of the turn is stored. If the
moderation service cannot be reached, the message passes (and a warning is logged) unless
`BOTGPT_MODERATION_FAIL_CLOSED` is set, in which case the turn fails with 503.
"""

from __future__ import annotations

import abc
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from botgpt.config import Settings
from botgpt.exceptions import InvalidInput, ServiceUnavailable

log = logging.getLogger("botgpt.moderation")


@dataclass(frozen=True, slots=True)
class ModerationResult:
    """Whether a text is flagged, and under which categories (with scores when known)."""

    flagged: bool
    categories: dict[str, bool] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)


class ContentFlagged(InvalidInput):
    """The message was refused by moderation."""

    code = "content_flagged"


class Moderator(abc.ABC):
    """Decides whether a user's message may be processed.

    Implementations answer with a `ModerationResult`; they raise only for their own
    outages (`ModerationUnavailable`), which `moderate` turns into a pass or a 503.
    """

    @abc.abstractmethod
    async def check(self, text: str) -> ModerationResult:
        """Classify `text`."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most moderators hold nothing
        """Release resources (HTTP connections)."""


class ModerationUnavailable(Exception):
    """The moderation service could not answer."""


class NoModeration(Moderator):
    """Lets everything through."""

    async def check(self, text: str) -> ModerationResult:
        """Never flags."""
        return ModerationResult(False)


class BlocklistModerator(Moderator):
    """Flags texts containing any of the configured words or phrases (whole words only)."""

    def __init__(self, terms: Sequence[str]) -> None:
        words = sorted({t.strip().lower() for t in terms if t.strip()}, key=len, reverse=True)
        self.pattern = (
            re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, words)) + r")(?!\w)", re.I)
            if words
            else None
        )

    async def check(self, text: str) -> ModerationResult:
        """Flag when a listed term appears as a whole word."""
        if self.pattern is None or not self.pattern.search(text):
            return ModerationResult(False)
        return ModerationResult(True, {"blocklist": True}, {"blocklist": 1.0})


class OpenAIModerator(Moderator):
    """An OpenAI-compatible `POST {base_url}/moderations` service."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.model = model
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    async def check(self, text: str) -> ModerationResult:
        """Ask the service; its categories and scores are kept as they come."""
        try:
            r = await self.client.post("/moderations", json={"model": self.model, "input": text})
            r.raise_for_status()
            result = r.json()["results"][0]
            return ModerationResult(
                bool(result["flagged"]),
                {k: bool(v) for k, v in (result.get("categories") or {}).items()},
                {k: float(v) for k, v in (result.get("category_scores") or {}).items()},
            )
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise ModerationUnavailable(type(exc).__name__) from exc

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


async def moderate(moderator: Moderator, text: str, fail_closed: bool) -> None:
    """Refuse `text` with `ContentFlagged` if flagged; decide what an outage means."""
    try:
        result = await moderator.check(text)
    except ModerationUnavailable as exc:
        if fail_closed:
            raise ServiceUnavailable("Moderation is unavailable; try again shortly.") from exc
        log.warning("moderation unavailable (%s); message allowed", exc)
        return
    if result.flagged:
        flagged = sorted(k for k, v in result.categories.items() if v)
        log.info("message refused by moderation", extra={"categories": flagged})
        raise ContentFlagged(
            "This message was refused by the content policy.",
            details={"categories": flagged},
        )


def build_moderator(settings: Settings) -> Moderator:
    """The moderator `BOTGPT_MODERATION` asks for."""
    if settings.moderation == "blocklist":
        return BlocklistModerator(settings.moderation_blocklist)
    if settings.moderation == "openai":
        key = settings.moderation_api_key
        return OpenAIModerator(
            settings.moderation_base_url,
            key.get_secret_value() if key else None,
            settings.moderation_model,
        )
    return NoModeration()
