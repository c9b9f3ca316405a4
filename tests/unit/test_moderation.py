"""Moderators: the offline blocklist and an OpenAI-compatible service behind a local fake."""

from __future__ import annotations

import pytest

from botgpt.exceptions import ServiceUnavailable
from botgpt.moderation.service import (
    BlocklistModerator,
    ContentFlagged,
    OpenAIModerator,
    moderate,
)
from tests.fakes.openai_server import FakeOpenAIServer, Reply


async def test_blocklist_matches_whole_words_case_insensitively() -> None:
    moderator = BlocklistModerator(["darn", "bad word"])
    assert (await moderator.check("Well, DARN it.")).flagged
    assert (await moderator.check("that is a Bad  word")).flagged is False  # two spaces
    assert (await moderator.check("that is a bad word!")).flagged
    assert not (await moderator.check("darned socks")).flagged  # not a whole word
    assert not (await BlocklistModerator([]).check("anything")).flagged


async def test_openai_compatible_service_result_is_used() -> None:
    flagged = {
        "results": [
            {
                "flagged": True,
                "categories": {"harassment": True, "violence": False},
                "category_scores": {"harassment": 0.91, "violence": 0.02},
            }
        ]
    }
    async with FakeOpenAIServer() as server:
        server.replies.append(Reply.json(200, flagged))
        moderator = OpenAIModerator(server.base_url, "sk-mod", "omni-moderation-latest")
        try:
            result = await moderator.check("you are awful")
            with pytest.raises(ContentFlagged) as refused:
                server.replies.append(Reply.json(200, flagged))
                await moderate(moderator, "you are awful", fail_closed=False)
        finally:
            await moderator.aclose()
    assert result.flagged and result.categories["harassment"] and not result.categories["violence"]
    assert result.scores["harassment"] == 0.91
    assert refused.value.details == {"categories": ["harassment"]}
    sent = server.requests[0]
    assert sent.path == "/v1/moderations"
    assert sent.headers["authorization"] == "Bearer sk-mod"
    assert sent.json() == {"model": "omni-moderation-latest", "input": "you are awful"}


async def test_an_outage_passes_or_fails_closed_as_configured(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeOpenAIServer() as server:
        moderator = OpenAIModerator(server.base_url, None, "m")
        try:
            server.replies.append(Reply.json(500, {"error": {"message": "down"}}))
            await moderate(moderator, "hello", fail_closed=False)  # passes
            assert "moderation unavailable" in caplog.text
            server.replies.append(Reply.json(500, {"error": {"message": "down"}}))
            with pytest.raises(ServiceUnavailable):
                await moderate(moderator, "hello", fail_closed=True)
        finally:
            await moderator.aclose()
