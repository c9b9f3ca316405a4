"""Sentences with character spans, citation markers, and the exact facts a sentence states.

Used by the support check of grounded answers: an answer and its passages are split the same
way; numbers (digits or number words, dates' days and years), month and weekday names, and
proper names are compared exactly, because an embedding barely moves when "25 days" becomes
"365 days".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# One or more citation markers: [1], [2][3], [1, 2].
MARKERS = re.compile(r"\s*\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
# A sentence ends at . ! ? (plus closing quotes/brackets and any markers that follow) before
# whitespace or the end, or at a line break.
_END = re.compile(r"[.!?]+[\"'”\u2019)\]]*(?:\s*\[\d{1,3}(?:\s*,\s*\d{1,3})*\])*(?=\s|$)|\n")
_ABBREVIATIONS = frozenset((
    "e.g", "i.e", "etc", "vs", "dr", "mr", "mrs", "ms", "prof", "st", "no", "nos", "approx",
    "art", "sec", "fig", "incl", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept",
    "oct", "nov", "dec", "inc", "ltd", "co", "corp", "p", "pp", "vol", "ch", "ca", "cf",
))  # fmt: skip
_ENUMERATOR = re.compile(r"^\s*(?:\d{1,2}|[a-z])[.)]\s*$", re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")
_CONTENT_MIN = 3


@dataclass(frozen=True, slots=True)
class Span:
    """A sentence of a text: ``text[start:end]``, without surrounding whitespace."""

    start: int
    end: int
    text: str


def split_sentences(text: str) -> list[Span]:
    """Sentences (or lines) of ``text`` with their spans; markers stay with their sentence."""
    spans: list[Span] = []
    start = 0
    for match in _END.finditer(text):
        end = match.end()
        if match.group() != "\n" and _is_abbreviation(text, match.start()):
            continue
        _add(spans, text, start, end)
        start = end
    _add(spans, text, start, len(text))
    return _merge_fragments(text, spans)


def _is_abbreviation(text: str, dot: int) -> bool:
    if text[dot] != ".":
        return False
    before = re.search(r"([^\W\d_]+(?:\.[^\W\d_]+)*)$", text[:dot])
    if before is None:
        return False
    word = before.group(1)
    # A single capital letter is an initial ("J. Smith"), not a sentence end.
    return word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isupper())


def _add(spans: list[Span], text: str, start: int, end: int) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if not stripped:
        return
    left = start + len(piece) - len(piece.lstrip())
    spans.append(Span(left, left + len(stripped), stripped))


def _merge_fragments(text: str, spans: list[Span]) -> list[Span]:
    """Join "1." list numbers to the item after them and lone "[2]" markers to the sentence
    before them, so that neither is judged as a sentence of its own."""
    merged: list[Span] = []
    pending: Span | None = None
    for span in spans:
        if pending is not None:
            span = Span(pending.start, span.end, text[pending.start : span.end])
            pending = None
        if _ENUMERATOR.match(span.text):
            pending = span
            continue
        lone_marker = not strip_markers(span.text).strip()
        if merged and lone_marker and not text[merged[-1].end : span.start].strip():
            last = merged.pop()
            span = Span(last.start, span.end, text[last.start : span.end])
        merged.append(span)
    if pending is not None:
        merged.append(pending)
    return merged


def strip_markers(text: str) -> str:
    """The text without citation markers."""
    return MARKERS.sub("", text)


def marker_numbers(text: str) -> list[int]:
    """Source numbers cited by the markers in ``text``, in order, without repeats."""
    found: list[int] = []
    for match in MARKERS.finditer(text):
        for part in match.group(1).split(","):
            number = int(part)
            if number not in found:
                found.append(number)
    return found


def content_words(text: str) -> set[str]:
    """Lower-case words of three or more letters (digits count as words)."""
    return {w.lower() for w in _WORD.findall(text) if len(w) >= _CONTENT_MIN or w.isdigit()}


# --------------------------------------------------------------------------- numbers

# Digits not glued to a word before them (E07 is a code), units after them allowed (85Nm).
_NUMBER = re.compile(r"(?<![^\W\d_])(?<![.\d])\d+(?:[.,:]\d+)*")
_UNITS = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
    "dozen": 12, "twice": 2, "double": 2, "half": 0.5, "quarter": 0.25,
}  # fmt: skip
# "one" is left out on purpose: it is far more often a pronoun than a count.
_NUMBER_WORD = re.compile(
    r"\b(" + "|".join(sorted(_UNITS, key=len, reverse=True)) + r")(?:[- ](one|two|three|four|"
    r"five|six|seven|eight|nine))?\b",
    re.IGNORECASE,
)


def _normalise_number(token: str) -> str:
    token = re.sub(r"(st|nd|rd|th)$", "", token.lower())
    if re.fullmatch(r"\d{1,3}(,\d{3})+", token):
        token = token.replace(",", "")
    token = token.replace(",", ".")
    token = re.sub(r":00$", "", token)  # 9:00 is 9
    if re.fullmatch(r"\d+\.\d+", token):
        token = token.rstrip("0").rstrip(".")
    return token.lstrip("0") or "0"


def _format(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def numbers(text: str) -> set[str]:
    """Numbers stated in ``text`` (digits and number words), normalised; markers ignored."""
    plain = strip_markers(text)
    found = {_normalise_number(m.group()) for m in _NUMBER.finditer(plain)}
    for match in _NUMBER_WORD.finditer(plain):
        value = float(_UNITS[match.group(1).lower()])
        if match.group(2):
            value += _UNITS[match.group(2).lower()]
        found.add(_format(value))
    return found


# --------------------------------------------------------------------------- names and dates

_MONTHS = (
    "january", "february", "march", "april", "june", "july", "august", "september", "october",
    "november", "december", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
    "sunday",
)  # fmt: skip
_MAY = re.compile(r"\bMay\b(?=\s+\d)|(?<=\d\s)May\b")
_CAPITALISED = re.compile(r"(?<![\w'\u2019-])([A-Z][a-z]+(?:['\u2019-][A-Za-z]+)*)")
# Words often capitalised in answers without naming anything.
_COMMON = frozenset((
    "the", "this", "that", "these", "those", "there", "their", "they", "then", "than", "yes",
    "however", "please", "note", "also", "according", "based", "source", "sources", "document",
    "documents", "passage", "passages", "answer", "question", "sorry", "unfortunately", "sure",
    "here", "therefore", "thus", "additionally", "furthermore", "moreover", "overall", "in",
    "on", "at", "for", "from", "with", "without", "if", "when", "where", "which", "who", "what",
    "why", "how", "you", "your", "we", "our", "it", "its", "is", "are", "was", "be", "an",
    "and", "or", "but", "not", "no", "all", "any", "each", "every", "some", "many", "most",
    "more",
))  # fmt: skip


def calendar_words(text: str) -> set[str]:
    """Month and weekday names in ``text`` (lower case; "May" only beside a number)."""
    lowered = content_words(text)
    found = {m for m in _MONTHS if m in lowered}
    if _MAY.search(text):
        found.add("may")
    return found


def names(text: str) -> set[str]:
    """Capitalised words inside a sentence (not its first word): likely proper names."""
    plain = strip_markers(text)
    found: set[str] = set()
    for match in _CAPITALISED.finditer(plain):
        before = plain[: match.start()].rstrip()
        # The first word of a sentence, a line, a list item or a quotation is capitalised anyway.
        at_start = not before or before[-1] in '.!?:;"“(-*•'
        if at_start or re.search(r"\n\s*$", plain[: match.start()]):
            continue
        word = re.sub(r"['\u2019]s$", "", match.group(1).lower())
        if word in _COMMON or word in _MONTHS or word == "may":
            continue
        found.add(word)
    return found


def vocabulary(text: str) -> set[str]:
    """Every lower-case word of ``text``, for name look-ups."""
    words = {w.lower() for w in _WORD.findall(text)}
    # "Smith's" names Smith, "harbour-town" holds Harbour: keep the stem and parts too.
    parts = {part for w in words for part in re.split(r"[-'\u2019]", w)}
    return words | parts | {re.sub(r"['\u2019]s$", "", w) for w in words}


# --------------------------------------------------------------------------- word overlap

_STOP = frozenset((
    "the", "and", "for", "are", "but", "not", "you", "your", "all", "any", "can", "her", "was",
    "one", "our", "out", "has", "have", "had", "his", "how", "its", "may", "new", "now", "see",
    "who", "did", "get", "gets", "got", "let", "say", "she", "too", "use", "that", "this",
    "with", "from", "they", "them", "their", "there", "then", "than", "these", "those", "what",
    "when", "where", "which", "while", "will", "would", "could", "should", "must", "been",
    "being", "were", "into", "onto", "upon", "about", "after", "before", "also", "only", "each",
    "every", "some", "such", "more", "most", "very", "just", "over", "under", "per", "within",
    "without", "between", "does", "doing", "done", "here", "it's", "i'm", "yes", "there's",
    "both", "either", "other", "same", "because", "until", "during", "through", "above",
    "below", "again", "further", "once", "why", "whom", "whose", "shall", "might", "well",
    "answer", "question", "source", "sources", "document", "documents", "passage", "text",
))  # fmt: skip


def _stem(word: str) -> str:
    word = re.sub(r"['\u2019]s$", "", word)
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + keep
            break
    # charge/charging/charged all become "charg".
    return word[:-1] if word.endswith("e") and len(word) > 4 else word


def stems(text: str) -> set[str]:
    """Stems of the content words of ``text`` (no stop words, no numbers, no markers)."""
    words = _WORD.findall(strip_markers(text).lower())
    return {
        _stem(w) for w in words if len(w) >= _CONTENT_MIN and w not in _STOP and not w.isdigit()
    }


_DATE = re.compile(
    r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(" + "|".join(_MONTHS[:11]) + r"|may)\b"
    r"|\b(" + "|".join(_MONTHS[:11]) + r"|may)\s+(\d{1,2})(?:st|nd|rd|th)?\b",
    re.IGNORECASE,
)


def dates(text: str) -> set[str]:
    """Day-and-month dates in ``text``, as "31 march"."""
    found = set()
    for m in _DATE.finditer(text):
        day, month = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
        found.add(f"{int(day)} {month.lower()}")
    return found
