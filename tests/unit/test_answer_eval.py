"""`botgpt eval answers` scores replies by the gold data under each policy (fake provider)."""

from __future__ import annotations

from pathlib import Path

import pytest

from botgpt.config import Settings
from botgpt.conversations.answer_eval import (
    DocPassage,
    QAItem,
    evaluate_answers,
    has_fact,
    states_wrong_fact,
)
from botgpt.conversations.grounding import GROUNDING_RULES
from botgpt.llm.fake import FakeProvider
from botgpt.retrieval.embedders import MiniLMOnnxEmbedder

DATASET = str(Path(__file__).parents[2] / "bench" / "data" / "grounded_qa")


def test_wrong_facts_are_judged_by_the_gold_data() -> None:
    item = QAItem("q", "How many days of leave do I get?", ("25 days",), "p")
    sources = [DocPassage("p", "h.pdf", 1, "You get 25 days of leave. Up to 5 days carry over.")]
    gold = sources[0].text
    assert has_fact("You get 25 DAYS.", item)
    assert not states_wrong_fact("You get 25 days [1].", item, sources, gold)
    assert states_wrong_fact("You get 365 days.", item, sources, gold)  # in no passage
    assert states_wrong_fact("You get 5 days.", item, sources, gold)  # another number instead
    assert not states_wrong_fact("I could not find this in the documents.", item, sources, gold)
    assert not states_wrong_fact("", item, sources, gold)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_policies_are_scored_on_the_same_replies() -> None:
    provider = FakeProvider()
    provider.enqueue("Report it to your manager, who will decide. I hope this helps!")
    answers = {
        "q01": "Full-time employees receive 365 days of paid annual leave per calendar year [1].",
        "q02": "Up to 5 days of unused annual leave can be carried over into the next year.",
        "q03": "I could not find this in the documents.",
    }
    report = await evaluate_answers(
        Settings(_env_file=None),  # type: ignore[call-arg]
        provider,
        MiniLMOnnxEmbedder(),
        DATASET,
        limit=4,
        answers=answers,
    )
    assert report.questions == 4 and report.raw_answers["q01"] == answers["q01"]
    # Only q04 went to the model, with the turn's grounded prompt.
    (request,) = provider.requests
    system = "\n".join(m.content for m in request.messages if m.role == "system")
    assert GROUNDING_RULES in system and "[1] (northwind-employee-handbook.pdf, page" in system
    assert request.messages[-1].content.startswith("After how many days of sick absence")

    off, annotate, strict = (report.policies[p] for p in ("off", "annotate", "strict"))
    assert off["answer_correct"] == 0.25  # only q02 states its fact
    assert off["wrong_fact_rate"] >= 0.25  # q01's 365 days
    assert annotate["wrong_fact_rate_unmarked"] < annotate["wrong_fact_rate"]
    assert strict["wrong_fact_rate"] == 0.0
    assert strict["extractive_answers"] >= 2  # q01 and q03 answered from the sources
    assert strict["answer_correct"] > off["answer_correct"]
    assert strict["citation_correct"] >= 0.5  # q02 got its marker, the quotes carry theirs
    assert strict["unsupported_sentence_rate"] == 0.0
    assert off["unsupported_sentence_rate"] > 0.0
    assert report.calibration["true_kept_at_threshold"] >= 0.95
    assert report.check_ms["median"] > 0
