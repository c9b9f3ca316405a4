"""Support check of grounded answers with the real offline MiniLM model (no network, no DB)."""

from __future__ import annotations

import pytest

from botgpt.retrieval.answer_policy import UNSUPPORTED_MARK, apply_policy
from botgpt.retrieval.embedders import Embedder, MiniLMOnnxEmbedder
from botgpt.retrieval.extractive import extractive_answer
from botgpt.retrieval.hybrid import Hit
from botgpt.retrieval.sentences import dates, marker_numbers, numbers, split_sentences
from botgpt.retrieval.support import Passage, check_support, prepare_passages

LEAVE = (
    "Annual leave. Full-time employees receive 25 days of paid annual leave per calendar year, "
    "in addition to public holidays. Part-time employees receive leave pro rata to their "
    "contracted hours."
)
# The certificate sentence starts on page 5 (the passage crosses a page break).
SICK = (
    "Sick leave. Report an absence to your line manager before 10:00 on the first day. "
    "A doctor's certificate is required for absences longer than 7 consecutive calendar days."
)
SICK_BREAK = SICK.index("A doctor")
FERRY = (
    "Island ferry. The ferry to Gull Island leaves the north pier every 45 minutes from 8:00. "
    "The crossing takes 20 minutes and a return ticket costs 9 euros."
)
PASSAGES = [
    Passage(1, LEAVE, "handbook.pdf", 3),
    Passage(2, SICK, "handbook.pdf", 4, ((SICK_BREAK, 5),)),
    Passage(3, FERRY, "visitor-guide.md", None),
]
QUESTION = "How many days of paid annual leave do full-time employees get?"


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return MiniLMOnnxEmbedder()


async def test_a_fabricated_number_is_marked_or_removed(embedder: Embedder) -> None:
    answer = (
        "Full-time employees receive 365 days of paid annual leave per calendar year [1]. "
        "Part-time employees get leave in proportion to their contracted hours [1]."
    )
    report = await check_support(answer, PASSAGES, embedder, question=QUESTION)
    fabricated, true = report.sentences
    assert not fabricated.supported and fabricated.score > 0.8  # similar, but the number is wrong
    assert any("number 365" in r for r in fabricated.reasons)
    assert true.supported and true.passage == 1
    assert report.unsupported == [fabricated]

    annotated = apply_policy(answer, report, "annotate")
    assert "365 days" in annotated.text and UNSUPPORTED_MARK.strip() in annotated.text
    first = annotated.sentences[0]
    assert first.kept and first.start is not None and first.end is not None
    assert annotated.text[first.start : first.end].endswith(UNSUPPORTED_MARK.strip())

    strict = apply_policy(answer, report, "strict")
    assert "365" not in strict.text
    assert (
        strict.text == "Part-time employees get leave in proportion to their contracted hours [1]."
    )
    assert [s.kept for s in strict.sentences] == [False, True]
    assert not strict.extractive

    assert apply_policy(answer, report, "off").text == answer


async def test_passages_prepared_while_the_model_writes_give_the_same_report(
    embedder: Embedder,
) -> None:
    answer = "Full-time staff get 25 days of paid holiday each year. Leave starts in Lisbon."
    prepared = await prepare_passages(PASSAGES, embedder, question=QUESTION)
    late = await check_support(answer, prepared, embedder)
    direct = await check_support(answer, PASSAGES, embedder, question=QUESTION)
    # Same verdicts; scores equal up to the int8 model's batch-dependent rounding.
    for a, b in zip(late.sentences, direct.sentences, strict=True):
        assert (a.supported, a.passage, a.reasons) == (b.supported, b.passage, b.reasons)
        assert a.score == pytest.approx(b.score, abs=0.02)
    assert late.extract is not None and direct.extract is not None
    assert late.extract.text == direct.extract.text
    assert [s.supported for s in late.sentences] == [True, False]


async def test_nothing_supported_under_strict_gives_the_extractive_answer(
    embedder: Embedder,
) -> None:
    answer = "Full-time employees receive 365 days of paid leave. Leave starts in Lisbon."
    report = await check_support(answer, PASSAGES, embedder, question=QUESTION)
    assert not any(s.supported for s in report.claims)
    assert any("name lisbon" in r for r in report.sentences[1].reasons)
    strict = apply_policy(answer, report, "strict")
    assert strict.extractive
    assert strict.text.startswith("From handbook.pdf, page 3: \u201cFull-time employees receive 25")
    assert strict.text.rstrip().endswith("[1]")
    assert strict.as_dict()["quotes"][0]["passage"] == 1


async def test_a_supported_sentence_gets_its_citation(embedder: Embedder) -> None:
    answer = "Full-time staff get 25 days of paid holiday each year. I hope this helps!"
    report = await check_support(answer, PASSAGES, embedder)
    claim, filler = report.sentences
    assert claim.supported and claim.passage == 1 and claim.page == 3
    assert filler.kind == "meta"
    checked = apply_policy(answer, report, "annotate")
    assert (
        checked.text
        == "Full-time staff get 25 days of paid holiday each year [1]. I hope this helps!"
    )
    assert checked.sentences[0].citation_added and checked.sentences[0].citations == (1,)

    # A marker naming the wrong passage is moved to the one that backs the sentence, and a
    # marker naming no passage at all is removed.
    wrong = (
        "Full-time staff get 25 days of paid holiday each year [3]. "
        "The ferry crossing takes 20 minutes [7]."
    )
    report = await check_support(wrong, PASSAGES, embedder)
    fixed = apply_policy(wrong, report, "strict")
    assert fixed.text == (
        "Full-time staff get 25 days of paid holiday each year [1]. "
        "The ferry crossing takes 20 minutes [3]."
    )
    assert fixed.sentences[0].citation_fixed
    assert marker_numbers(fixed.text) == [1, 3]


async def test_a_refusal_is_kept_unless_a_claim_is_supported(embedder: Embedder) -> None:
    refusal = "I could not find this in the documents."
    report = await check_support(refusal, PASSAGES, embedder, question=QUESTION)
    assert report.sentences[0].kind == "refusal" and report.claims == []
    assert apply_policy(refusal, report, "annotate").text == refusal
    assert apply_policy(refusal, report, "strict").extractive  # the sources do answer it

    mixed = "The documents do not say. Full-time staff get 25 days of paid holiday each year [1]."
    report = await check_support(mixed, PASSAGES, embedder)
    assert apply_policy(mixed, report, "strict").text == (
        "Full-time staff get 25 days of paid holiday each year [1]."
    )


async def test_a_topical_sentence_with_words_of_its_own_is_unsupported(
    embedder: Embedder,
) -> None:
    answer = (
        "The amount of annual leave depends heavily on the employment laws of your jurisdiction."
    )
    report = await check_support(answer, PASSAGES, embedder)
    (claim,) = report.claims
    assert not claim.supported
    assert any("jurisdiction" in r for r in claim.reasons if r.startswith("words in no"))


async def test_an_extractive_answer_quotes_the_right_passage_with_page_and_span(
    embedder: Embedder,
) -> None:
    question = "After how many days of absence is a doctor's certificate required?"
    extract = await extractive_answer(question, PASSAGES, embedder, max_sentences=1)
    assert extract is not None
    (quote,) = extract.quotes
    assert quote.passage == 2
    assert SICK[quote.start : quote.end] == quote.text
    assert quote.text.startswith("A doctor's certificate is required")
    assert quote.page == 5  # the sentence after the page break, not the passage's first page
    assert extract.text == f"From handbook.pdf, page 5: \u201c{quote.text}\u201d [2]"

    # Without pages, the lead names the document only.
    extract = await extractive_answer("How long is the ferry crossing?", PASSAGES, embedder)
    assert extract is not None
    assert extract.text.startswith("From visitor-guide.md: \u201c")
    assert "20 minutes" in extract.text and "[3]" in extract.text
    assert await extractive_answer(question, [], embedder) is None


def test_sentences_keep_spans_markers_and_abbreviations() -> None:
    text = (
        "Claims are due in 30 days, e.g. after a trip. [1] The limit is 4.5 hours [2].\n"
        "1. Ask Dr. Silva first.\n- Then file it!"
    )
    spans = split_sentences(text)
    assert [s.text for s in spans] == [
        "Claims are due in 30 days, e.g. after a trip. [1]",
        "The limit is 4.5 hours [2].",
        "1. Ask Dr. Silva first.",
        "- Then file it!",
    ]
    assert all(text[s.start : s.end] == s.text for s in spans)


def test_numbers_and_dates_are_normalised() -> None:
    assert numbers("twenty-five days, 1,200 euros, 4.50 bar, at 9:00, the 25th [3]") == {
        "25",
        "1200",
        "4.5",
        "9",
    }
    assert numbers("one of the options") == set()  # "one" is a pronoun far more often
    assert dates("before 31 March or on March 5th") == {"31 march", "5 march"}


def test_a_search_hit_becomes_a_passage_with_its_pages() -> None:
    hit = Hit(
        chunk_id="c",
        document_id="d",
        ordinal=0,
        page=4,
        char_start=120,
        char_end=120 + len(SICK),
        text=SICK,
        heading="",
        score=0.5,
        page_end=5,
        page_breaks=((SICK_BREAK, 5),),
    )
    passage = Passage.from_hit(2, hit, "handbook.pdf")
    assert (passage.number, passage.document, passage.char_start) == (2, "handbook.pdf", 120)
    assert passage.page_at(0) == 4 and passage.page_at(SICK_BREAK + 3) == 5
