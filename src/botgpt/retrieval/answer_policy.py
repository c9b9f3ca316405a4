"""What a reader sees of a checked answer: the policy applied to a support report.

``annotate`` keeps every sentence and marks the unsupported ones (``UNSUPPORTED_MARK`` after
the sentence, and ``supported: false`` in the records), ``strict`` drops them and, when no
supported claim is left, answers with the extractive answer instead, ``off`` returns the
answer untouched. Under ``annotate`` and ``strict`` a supported sentence without a marker
gets ``[n]`` when one passage clearly supports it, a marker naming a passage that does not
back the sentence is moved to the one that does, and markers naming no passage are removed.
`apply_policy` is pure: the same answer and report always give the same result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from botgpt.retrieval.sentences import MARKERS, marker_numbers
from botgpt.retrieval.support import SentenceSupport, SupportReport

__all__ = ["UNSUPPORTED_MARK", "CheckedAnswer", "CheckedSentence", "Policy", "apply_policy"]

Policy = Literal["annotate", "strict", "off"]
UNSUPPORTED_MARK = " [unsupported]"
# "Clearly one passage": the best passage beats the runner-up by at least this much cosine
# (or the runner-up does not reach the threshold at all).
CLEAR_MARGIN = 0.05


@dataclass(frozen=True, slots=True)
class CheckedSentence:
    """A sentence of the answer after the policy: kept or not, where it is in the final text."""

    support: SentenceSupport
    kept: bool
    text: str  # as shown (markers fixed, mark added); the original is support.text
    start: int | None  # span in the final text, None when dropped
    end: int | None
    citations: tuple[int, ...]
    citation_added: bool = False
    citation_fixed: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: the support record plus what the policy did with it."""
        return {
            **self.support.as_dict(),
            "kept": self.kept,
            "final_start": self.start,
            "final_end": self.end,
            "citations": list(self.citations),
            "citation_added": self.citation_added,
            "citation_fixed": self.citation_fixed,
        }


@dataclass(frozen=True, slots=True)
class CheckedAnswer:
    """The final text of a grounded answer and how each sentence was judged and treated."""

    text: str
    policy: Policy
    sentences: tuple[CheckedSentence, ...]
    extractive: bool  # the text is the extractive answer, not the model's
    report: SupportReport | None

    @property
    def shown_unsupported(self) -> int:
        """Unsupported claims the reader still sees (marked, under annotate)."""
        return sum(
            1 for s in self.sentences if s.kept and s.support.is_claim and not s.support.supported
        )

    def as_dict(self) -> dict[str, Any]:
        """The message's ``support`` field and the ``done`` event's (JSON-ready)."""
        report = self.report
        return {
            "policy": self.policy,
            "extractive": self.extractive,
            "threshold": report.threshold if report else None,
            "model": report.model if report else None,
            "check_ms": round(report.elapsed_ms, 2) if report else None,
            "claims": len(report.claims) if report else 0,
            "unsupported": len(report.unsupported) if report else 0,
            "sentences": [s.as_dict() for s in self.sentences],
            "quotes": (
                [q.as_dict() for q in report.extract.quotes]
                if self.extractive and report and report.extract
                else []
            ),
        }


def apply_policy(
    answer: str,
    report: SupportReport | None,
    policy: Policy,
    *,
    mark: str = UNSUPPORTED_MARK,
    not_found: str = "",
) -> CheckedAnswer:
    """The text a reader sees under ``policy``, with a record per sentence of ``answer``.

    ``not_found`` is the text when ``strict`` leaves nothing and there is nothing to quote.
    """
    if policy == "off" or report is None:
        return CheckedAnswer(answer, policy, (), False, report)
    valid = {p.number for p in report.passages}
    supported_claims = [s for s in report.sentences if s.is_claim and s.supported]
    if policy == "strict" and not supported_claims and report.extract is not None:
        dropped = tuple(CheckedSentence(s, False, s.text, None, None, ()) for s in report.sentences)
        return CheckedAnswer(report.extract.text, policy, dropped, True, report)

    pieces: list[str] = []
    out: list[CheckedSentence] = []
    cursor = 0  # end of the previous sentence in the answer
    length = 0
    for support in report.sentences:
        gap = answer[cursor : support.start]
        cursor = support.end
        keep = _keeps(support, policy, bool(supported_claims))
        if not keep:
            out.append(CheckedSentence(support, False, support.text, None, None, ()))
            continue
        text, cites, added, fixed = _cite(support, report.threshold, valid)
        if policy == "annotate" and support.is_claim and not support.supported:
            text += mark
        gap = gap if pieces else ""
        if pieces and not gap:
            gap = " "
        pieces.append(gap + text)
        start = length + len(gap)
        length = start + len(text)
        out.append(CheckedSentence(support, True, text, start, length, cites, added, fixed))
    return CheckedAnswer("".join(pieces) or not_found, policy, tuple(out), False, report)


def _keeps(support: SentenceSupport, policy: Policy, any_supported: bool) -> bool:
    if policy != "strict":
        return True
    if support.kind == "claim":
        return support.supported
    if support.kind == "refusal":
        # "I could not find it" next to supported claims contradicts them.
        return not any_supported
    return support.kind == "meta"


def _cite(
    support: SentenceSupport, threshold: float, valid: set[int]
) -> tuple[str, tuple[int, ...], bool, bool]:
    """The sentence with its markers fixed: (text, cited numbers, added?, fixed?)."""
    cited = [n for n in marker_numbers(support.text) if n in valid]
    stray = len(cited) < len(support.cited)  # markers naming no passage: removed
    backed = any(support.scores.get(n, 0.0) >= threshold for n in cited)
    if support.is_claim and support.supported and not backed:
        clear = _clear_passage(support, threshold)
        if clear is not None:
            added = not support.cited
            return _with_markers(support.text, [clear]), (clear,), added, not added
    text = _with_markers(support.text, cited) if stray else support.text
    return text, tuple(cited), False, stray


def _clear_passage(support: SentenceSupport, threshold: float) -> int | None:
    ranked = sorted(support.scores.items(), key=lambda item: -item[1])
    if not ranked or ranked[0][1] < threshold:
        return None
    if len(ranked) > 1 and ranked[1][1] >= threshold and ranked[0][1] - ranked[1][1] < CLEAR_MARGIN:
        return None
    return ranked[0][0]


def _with_markers(sentence: str, numbers: list[int]) -> str:
    """The sentence with its markers replaced by ``numbers``, before the final punctuation."""
    plain = MARKERS.sub("", sentence).rstrip()
    if not numbers:
        return plain
    markers = "".join(f"[{n}]" for n in numbers)
    body = plain.rstrip(".!?:;")
    tail = plain[len(body) :]
    if body.endswith(("\u201d", '"', ")")) and not tail:
        return f"{body} {markers}"
    return f"{body} {markers}{tail}"
