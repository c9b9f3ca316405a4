"""Turn a free-text query into keyword-search terms shared by both backends.

Both backends search with an OR of the query's content words and let the ranking function
(BM25 / ts_rank) weigh them: an AND of every word (``plainto_tsquery``, FTS5's default) misses
any passage that words the idea differently, which costs most of the recall on natural
language questions.
"""

from __future__ import annotations

import re

# Letters/digits only: underscores and punctuation split terms, as the FTS tokenizers do.
_TERM = re.compile(r"[^\W_]+")
MAX_TERMS = 48

# Common English function words; both engines would weigh them ~0, dropping them keeps the OR
# query short (each term is a posting list to merge).
_STOPWORD_TEXT = """a about above after again against all am an and any are as at be because been
    before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is
    it its itself just me more most my myself no nor not now of off on once only or other our
    ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours yourself
    yourselves"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def keyword_terms(query: str, *, max_terms: int = MAX_TERMS) -> list[str]:
    """Lower-cased distinct content words of ``query``, in order, without stopwords."""
    seen: dict[str, None] = {}
    for term in _TERM.findall(query.lower()):
        if term not in STOPWORDS and term not in seen:
            seen[term] = None
    terms = list(seen)
    if not terms:  # a query made only of stopwords still deserves an answer
        terms = list(dict.fromkeys(_TERM.findall(query.lower())))
    return terms[:max_terms]


def fts5_match_expression(terms: list[str]) -> str:
    """An FTS5 MATCH expression: each term quoted (no operator injection), OR-ed."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def tsquery_expression(terms: list[str]) -> str:
    """A ``to_tsquery`` source: terms are alphanumeric already, so they are safe to OR."""
    return " | ".join(terms)
