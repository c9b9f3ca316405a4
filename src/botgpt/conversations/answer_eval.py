"""Answer evaluation: how often a grounded answer states the right fact, cites it, or a wrong one.

`evaluate_answers` (run by ``botgpt eval answers``) reads a grounded QA set (see
bench/data/grounded_qa/README.md), gives each question its gold passage plus the most
similar other passages of the set (MiniLM cosine) as numbered sources, builds the prompt
exactly as the chat turn does (`number_sources`, `sources_block`, the app's system prompt,
`build_context`), streams the configured provider's answer, runs the support check and
applies each policy. Scoring is by the gold data, independent of the check: an answer is
correct when it contains one of the fact's accepted forms; it states a wrong fact when it
contains a number in none of its passages, or lacks the fact and states a fact of the same
kind instead (a number, a weekday or month, a name). Extractive quotes are the sources'
own words and are never counted wrong; under ``annotate`` the sentences the reader sees
marked unsupported are counted both ways (``wrong_fact_rate`` and ``..._unmarked``).
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from botgpt.config import Settings
from botgpt.conversations.grounding import number_sources, sources_block
from botgpt.conversations.prompts import system_prompt
from botgpt.llm.base import ChatRequest, LLMProvider
from botgpt.llm.context import build_context, effective_budget
from botgpt.llm.tokens import get_counter
from botgpt.retrieval.answer_policy import CheckedAnswer, Policy, apply_policy
from botgpt.retrieval.embedders import Embedder
from botgpt.retrieval.hybrid import Hit
from botgpt.retrieval.sentences import (
    calendar_words,
    marker_numbers,
    names,
    numbers,
    split_sentences,
)
from botgpt.retrieval.support import (
    DEFAULT_THRESHOLD,
    Passage,
    check_support,
    prepare_passages,
    sentence_kind,
)

__all__ = ["QAItem", "calibrate", "evaluate_answers", "load_dataset"]

POLICIES: tuple[Policy, ...] = ("off", "annotate", "strict")


@dataclass(frozen=True, slots=True)
class DocPassage:
    """A passage of the QA set's documents."""

    id: str
    document: str
    page: int | None
    text: str


@dataclass(frozen=True, slots=True)
class QAItem:
    """A question, the accepted forms of its answer fact, and its gold passage."""

    id: str
    question: str
    answer: tuple[str, ...]
    passage: str
    paraphrase: str = ""


@dataclass(frozen=True, slots=True)
class QADataset:
    """Passages by id and questions."""

    passages: dict[str, DocPassage]
    items: list[QAItem]


def load_dataset(directory: str | Path) -> QADataset:
    """Read ``documents.json`` and ``questions.jsonl`` of a grounded QA set."""
    root = Path(directory)
    passages: dict[str, DocPassage] = {}
    for doc in json.loads((root / "documents.json").read_text()):
        for p in doc["passages"]:
            passages[p["id"]] = DocPassage(p["id"], doc["name"], p.get("page"), p["text"])
    items = []
    for line in (root / "questions.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            items.append(
                QAItem(
                    row["id"],
                    row["question"],
                    tuple(a.lower() for a in row["answer"]),
                    row["passage"],
                    row.get("paraphrase", ""),
                )
            )
    missing = [i.id for i in items if i.passage not in passages]
    if missing:
        raise ValueError(f"questions name unknown passages: {missing}")
    return QADataset(passages, items)


# --------------------------------------------------------------------------- sources


async def select_sources(
    data: QADataset, embedder: Embedder, k: int
) -> dict[str, list[DocPassage]]:
    """Per question: the gold passage plus the k-1 most similar others, by similarity."""
    ids = list(data.passages)
    passage_v = await embedder.embed([data.passages[i].text for i in ids])
    question_v = await embedder.embed([item.question for item in data.items])
    chosen: dict[str, list[DocPassage]] = {}
    for item, qv in zip(data.items, question_v, strict=True):
        scores = passage_v @ qv
        order = [ids[j] for j in np.argsort(-scores)]
        others = [pid for pid in order if pid != item.passage]
        picked = [*others[: k - 1], item.passage]
        picked.sort(key=lambda pid: -float(scores[ids.index(pid)]))
        chosen[item.id] = [data.passages[pid] for pid in picked]
    return chosen


def as_passages(sources: Sequence[DocPassage]) -> list[Passage]:
    """The numbered passages of a question, as the support check takes them."""
    return [Passage(n, p.text, p.document, p.page) for n, p in enumerate(sources, 1)]


def grounded_request(
    settings: Settings,
    provider: LLMProvider,
    question: str,
    sources: Sequence[DocPassage],
    max_tokens: int,
) -> ChatRequest:
    """The chat request the turn would send for ``question`` with these sources."""
    hits = [
        Hit(p.id, p.document, n, p.page, 0, len(p.text), p.text, "", 1.0)
        for n, p in enumerate(sources)
    ]
    block = sources_block(number_sources(hits, {p.document: p.document for p in sources}))
    built = build_context(
        system_prompt=system_prompt(settings.default_system_prompt, None),
        history=[_Message("q", "user", question)],
        budget=effective_budget(
            provider.context_window, settings.reply_reserve_tokens, settings.context_max_tokens
        ),
        counter=get_counter(provider.model),
        grounding=block,
    )
    return ChatRequest(
        messages=built.messages, max_tokens=max_tokens, temperature=settings.llm_temperature
    )


@dataclass(frozen=True, slots=True)
class _Message:
    id: str
    role: str
    content: str


# --------------------------------------------------------------------------- scoring


def has_fact(text: str, item: QAItem) -> bool:
    """Whether ``text`` states one of the accepted forms of the answer."""
    flat = " ".join(text.lower().replace("\u2019", "'").split())
    return any(form in flat for form in item.answer)


def states_wrong_fact(
    text: str, item: QAItem, sources: Sequence[DocPassage], gold_text: str
) -> bool:
    """A number in no source, or no right fact but another fact of the same kind."""
    if not any(sentence_kind(s.text) == "claim" for s in split_sentences(text)):
        return False  # nothing, or only "I could not find it": not a wrong fact
    known = set().union(*(numbers(p.text) for p in sources)) | numbers(item.question)
    if numbers(text) - known:
        return True
    if has_fact(text, item):
        return False
    form = item.answer[0]
    if numbers(form):
        return bool(numbers(text) - numbers(item.question))
    if calendar_words(form):
        return bool(calendar_words(text) - calendar_words(item.question))
    found = re.search(re.escape(form), gold_text, re.IGNORECASE)
    if found is not None and found.group()[:1].isupper():
        return bool(names(text) - names("x " + item.question))
    return True  # a claim without the fact where the fact is a description


def cites_gold(text: str, item: QAItem, gold_number: int) -> bool:
    """Whether a sentence stating the fact cites the gold passage's number."""
    return any(
        has_fact(s.text, item) and gold_number in marker_numbers(s.text)
        for s in split_sentences(text)
    )


def _shown_model_text(checked: CheckedAnswer, answer: str, *, unmarked_only: bool) -> str:
    """What the model wrote that the reader sees (extractive quotes excluded)."""
    if checked.extractive:
        return ""
    if checked.policy == "off":
        return answer
    return " ".join(
        s.text
        for s in checked.sentences
        if s.kept and not (unmarked_only and s.support.is_claim and not s.support.supported)
    )


@dataclass(slots=True)
class _Tally:
    correct: int = 0
    cited: int = 0
    wrong: int = 0
    wrong_unmarked: int = 0
    extractive: int = 0
    claims: int = 0
    unsupported: int = 0

    def as_dict(self, n: int) -> dict[str, Any]:
        return {
            "answer_correct": round(self.correct / n, 4),
            "citation_correct": round(self.cited / n, 4),
            "citation_correct_of_correct": round(self.cited / self.correct, 4)
            if self.correct
            else None,
            "wrong_fact_rate": round(self.wrong / n, 4),
            "wrong_fact_rate_unmarked": round(self.wrong_unmarked / n, 4),
            "extractive_answers": self.extractive,
            "unsupported_sentence_rate": round(self.unsupported / self.claims, 4)
            if self.claims
            else 0.0,
        }


# --------------------------------------------------------------------------- calibration


async def calibrate(
    data: QADataset,
    sources: dict[str, list[DocPassage]],
    embedder: Embedder,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """Similarity of true paraphrases vs facts of other questions, and the best threshold.

    Supported: each question's paraphrase against its own sources. Unsupported: the
    paraphrases of the other questions whose gold passage is not among those sources.
    """
    positives: list[float] = []
    negatives: list[float] = []
    true_supported = false_supported = 0
    items = [i for i in data.items if i.paraphrase]
    for item in items:
        passages = as_passages(sources[item.id])
        given = {p.id for p in sources[item.id]}
        others = [o.paraphrase for o in items if o.passage not in given]
        answer = "\n".join([item.paraphrase, *others])
        report = await check_support(answer, passages, embedder, threshold=threshold)
        first, *rest = report.claims
        positives.append(first.score)
        true_supported += first.supported
        negatives.extend(r.score for r in rest)
        false_supported += sum(r.supported for r in rest)
    grid = [round(0.30 + 0.01 * i, 2) for i in range(50)]

    def balanced(t: float) -> float:
        tpr = sum(s >= t for s in positives) / len(positives)
        tnr = sum(s < t for s in negatives) / len(negatives)
        return (tpr + tnr) / 2

    best = max(grid, key=balanced)
    at = threshold
    return {
        "positives": len(positives),
        "negatives": len(negatives),
        "positive_score_p10": round(float(np.percentile(positives, 10)), 3),
        "positive_score_min": round(min(positives), 3),
        "negative_score_p90": round(float(np.percentile(negatives, 90)), 3),
        "negative_score_p99": round(float(np.percentile(negatives, 99)), 3),
        "best_threshold": best,
        "threshold": at,
        "true_kept_at_threshold": round(sum(s >= at for s in positives) / len(positives), 4),
        "false_kept_at_threshold": round(sum(s >= at for s in negatives) / len(negatives), 4),
        "true_supported_by_full_check": round(true_supported / len(positives), 4),
        "false_supported_by_full_check": round(false_supported / len(negatives), 4),
    }


async def calibrate_only(dataset_dir: str, embedder: Embedder, passages: int = 3) -> dict[str, Any]:
    """The threshold calibration of a QA set, without asking any model."""
    data = load_dataset(dataset_dir)
    return await calibrate(data, await select_sources(data, embedder, passages), embedder)


# --------------------------------------------------------------------------- the run


@dataclass(slots=True)
class AnswerEvalReport:
    """Everything ``botgpt eval answers`` prints."""

    dataset: str
    model: str
    questions: int
    passages_per_question: int
    threshold: float
    policies: dict[str, dict[str, Any]]
    extractive_only: dict[str, Any]
    check_ms: dict[str, float]  # after the last token, passages prepared meanwhile
    prepare_ms: dict[str, float]  # embedding the passages and question (during generation)
    first_token_ms: dict[str, float]
    calibration: dict[str, Any]
    examples: list[dict[str, Any]] = field(default_factory=list)
    raw_answers: dict[str, str] = field(default_factory=dict)


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 1),
        "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 1),
        "mean": round(statistics.fmean(ordered), 1),
    }


async def evaluate_answers(
    settings: Settings,
    provider: LLMProvider,
    embedder: Embedder,
    dataset_dir: str,
    *,
    passages: int = 3,
    limit: int | None = None,
    max_tokens: int = 160,
    threshold: float = DEFAULT_THRESHOLD,
    policies: Sequence[Policy] = POLICIES,
    answers: dict[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AnswerEvalReport:
    """Ask every question (or the first ``limit``) and score the answers under each policy.

    ``answers`` (question id -> text, e.g. ``raw_answers`` of an earlier report) are scored
    instead of asking the model again, to compare checks on the same replies.
    """
    data = load_dataset(dataset_dir)
    chosen = await select_sources(data, embedder, passages)
    calibration = await calibrate(data, chosen, embedder)
    items = data.items[:limit] if limit else data.items
    tallies = {policy: _Tally() for policy in policies}
    extract_tally = _Tally()
    check_ms: list[float] = []
    prepare_ms: list[float] = []
    first_token: list[float] = []
    examples: list[dict[str, Any]] = []
    raw_answers: dict[str, str] = {}
    for done, item in enumerate(items, 1):
        sources = chosen[item.id]
        gold_number = next(n for n, p in enumerate(sources, 1) if p.id == item.passage)
        gold_text = data.passages[item.passage].text
        if answers is not None and item.id in answers:
            answer = answers[item.id]
        else:
            request = grounded_request(settings, provider, item.question, sources, max_tokens)
            started = time.perf_counter()
            pieces: list[str] = []
            async for chunk in provider.stream(request):
                if chunk.delta and not pieces:
                    first_token.append((time.perf_counter() - started) * 1000)
                if chunk.delta:
                    pieces.append(chunk.delta)
            answer = "".join(pieces).strip()
        raw_answers[item.id] = answer
        # The turn can prepare the passages while the model writes; timed apart.
        prepared = await prepare_passages(as_passages(sources), embedder, question=item.question)
        prepare_ms.append(prepared.elapsed_ms)
        report = await check_support(answer, prepared, embedder, threshold=threshold)
        check_ms.append(report.elapsed_ms)
        shown: dict[str, str] = {}
        for policy in policies:
            checked = apply_policy(answer, report, policy)
            shown[policy] = checked.text
            tally = tallies[policy]
            tally.correct += has_fact(checked.text, item)
            tally.cited += cites_gold(checked.text, item, gold_number)
            seen = _shown_model_text(checked, answer, unmarked_only=False)
            unmarked = _shown_model_text(checked, answer, unmarked_only=True)
            tally.wrong += states_wrong_fact(seen, item, sources, gold_text)
            tally.wrong_unmarked += states_wrong_fact(unmarked, item, sources, gold_text)
            tally.extractive += checked.extractive
            if checked.extractive and report.extract is not None:
                tally.claims += len(report.extract.quotes)  # verbatim: supported by definition
                continue
            # Annotate shows the same sentences (marked): only strict changes what is claimed.
            after = (
                report
                if policy != "strict"
                else await check_support(
                    checked.text, as_passages(sources), embedder, threshold=threshold
                )
            )
            tally.claims += len(after.claims)
            tally.unsupported += len(after.unsupported)
        if report.extract is not None:
            text = report.extract.text
            extract_tally.correct += has_fact(text, item)
            extract_tally.cited += cites_gold(text, item, gold_number)
        if len(examples) < 6:
            examples.append({"id": item.id, "question": item.question, "answer": answer, **shown})
        if progress is not None:
            progress(done, len(items))
    n = len(items)
    return AnswerEvalReport(
        dataset=dataset_dir,
        model=provider.model,
        questions=n,
        passages_per_question=passages,
        threshold=threshold,
        policies={policy: tallies[policy].as_dict(n) for policy in policies},
        extractive_only={
            "answer_correct": round(extract_tally.correct / n, 4) if n else 0.0,
            "citation_correct": round(extract_tally.cited / n, 4) if n else 0.0,
        },
        check_ms=_summary(check_ms),
        prepare_ms=_summary(prepare_ms),
        first_token_ms=_summary(first_token),
        calibration=calibration,
        examples=examples,
        raw_answers=raw_answers,
    )
