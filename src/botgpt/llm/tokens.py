"""Offline token counting for budgeting prompts (OpenAI cl100k / o200k encodings).

The real counter uses the `bpe-openai` package, whose wheel embeds the
cl100k_base and o200k_base vocabularies in its Rust extension: nothing is
downloaded at run time, and counting does not build a token list in Python.
When that package is missing, a deliberately pessimistic heuristic stands in so
budgets are still respected (it over-counts rather than under-counts).
"""

from __future__ import annotations

import functools
import importlib
import importlib.machinery
import importlib.util
import logging
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Protocol, cast, runtime_checkable

from botgpt.llm.base import ChatMessage

logger = logging.getLogger(__name__)

#: Tokens a chat message costs beyond its content (role and delimiters), as in
#: OpenAI's published counting recipe (3 delimiter tokens + about 1 for the role).
MESSAGE_OVERHEAD_TOKENS = 4
#: Tokens that prime the assistant's reply (`<|start|>assistant<|message|>`).
REPLY_PRIMING_TOKENS = 3

CL100K = "cl100k_base"
O200K = "o200k_base"

# Model families tokenised with o200k_base; everything else is counted with cl100k_base,
# which is also a fair estimate for non-OpenAI models (Llama, Mistral, Qwen ...).
_O200K_PREFIXES = (
    "gpt-4o",
    "chatgpt-4o",
    "gpt-4.1",
    "gpt-4.5",
    "gpt-5",
    "gpt-oss",
    "o1",
    "o3",
    "o4",
)

# Contents up to this many characters are remembered: chat history is recounted on
# every turn, while huge texts (documents) are rarely counted twice and would pin memory.
_CACHE_MAX_CHARS = 8192
_CACHE_SIZE = 2048


@runtime_checkable
class TokenCounter(Protocol):
    """Counts tokens of text and of whole chat prompts for one encoding."""

    @property
    def encoding(self) -> str:
        """The encoding's name, e.g. `o200k_base` (or `heuristic`)."""
        ...

    def count(self, text: str) -> int:
        """Tokens of `text` on its own."""
        ...

    def count_messages(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens of a whole prompt: contents, per-message overhead and reply priming."""
        ...


def message_tokens(counter: TokenCounter, content: str) -> int:
    """Tokens one chat message costs in a prompt: its content plus the per-message overhead."""
    return counter.count(content) + MESSAGE_OVERHEAD_TOKENS


class _CachingCounter:
    """Shared logic: an LRU over short texts and the prompt formula."""

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._cached: Callable[[str], int] = functools.lru_cache(maxsize=_CACHE_SIZE)(
            self._count_uncached
        )

    @property
    def encoding(self) -> str:
        """The encoding's name."""
        return self._encoding

    def _count_uncached(self, text: str) -> int:
        raise NotImplementedError

    def count(self, text: str) -> int:
        """Tokens of `text` on its own."""
        if not text:
            return 0
        if len(text) <= _CACHE_MAX_CHARS:
            return self._cached(text)
        return self._count_uncached(text)

    def count_messages(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens of a whole prompt; an empty prompt costs nothing."""
        if not messages:
            return 0
        return REPLY_PRIMING_TOKENS + sum(
            self.count(m.content) + MESSAGE_OVERHEAD_TOKENS for m in messages
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._encoding}>"


class _RustTokenizer(Protocol):
    """The part of `bpe_openai._bindings.PyTokenizer` used here."""

    def count(self, text: str) -> int: ...


@functools.cache
def _load_bindings() -> ModuleType:
    """The `bpe_openai._bindings` Rust extension, loaded without its package.

    The private bindings module is used on purpose: its `count` runs entirely in
    Rust (about 4x faster than `len(Encoding.encode(...))`) and the package ships
    a .pyi for it. The package's `__init__` parses every vocabulary in Python
    (about 350 ms and tens of MB) for features not needed here, so the extension
    file is loaded directly; a plain import is the fallback. Raises ImportError
    when bpe-openai is not installed.
    """
    loaded = sys.modules.get("bpe_openai._bindings")
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec("bpe_openai")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                path = Path(folder) / f"_bindings{suffix}"
                if not path.is_file():
                    continue
                name = "bpe_openai._bindings"
                loader = importlib.machinery.ExtensionFileLoader(name, str(path))
                ext_spec = importlib.util.spec_from_file_location(name, path, loader=loader)
                if ext_spec is None:
                    continue
                module = importlib.util.module_from_spec(ext_spec)
                loader.exec_module(module)
                return module
    return importlib.import_module("bpe_openai._bindings")


class BpeCounter(_CachingCounter):
    """Exact counts from the `bpe-openai` Rust tokenizer (vocabulary bundled in the wheel)."""

    def __init__(self, encoding: str) -> None:
        super().__init__(encoding)
        bindings = _load_bindings()
        self._tokenizer = cast(_RustTokenizer, bindings.tokenizer_for_encoding(encoding))

    def _count_uncached(self, text: str) -> int:
        try:
            return self._tokenizer.count(text)
        except UnicodeEncodeError:
            # Lone surrogates (e.g. from broken JSON escapes) cannot cross into Rust.
            return self._tokenizer.count(text.encode("utf-8", "replace").decode("utf-8"))


class HeuristicCounter(_CachingCounter):
    """An estimate used only when `bpe-openai` is not installed.

    It mimics the BPE pre-tokenisers: a letter run costs about one token per four
    letters, digits one per three, each punctuation mark and each non-ASCII
    character one (CJK, emoji and most scripts are about that), and whitespace
    between words nothing. Prose lands within about +-30% of cl100k; random
    strings (hashes, base64) are under-counted, so keep real budgets on BpeCounter.
    """

    _pieces = re.compile(r"[A-Za-z]+|[0-9]+|\s+|.", re.DOTALL)

    def __init__(self) -> None:
        super().__init__("heuristic")

    def _count_uncached(self, text: str) -> int:
        total = 0
        for match in self._pieces.finditer(text):
            piece = match.group()
            first = piece[0]
            if first.isascii() and first.isalpha():
                total += max(1, (len(piece) + 2) // 4)
            elif first.isascii() and first.isdigit():
                total += (len(piece) + 2) // 3
            elif first.isspace():
                # One space joins the next word's token; longer runs cost a token.
                total += 0 if piece == " " else 1
            else:
                total += 1
        return max(total, 1)


def encoding_for_model(model: str) -> str:
    """The tokenizer encoding to count `model`'s prompts with (o200k or cl100k)."""
    # Accept routed names ("openai/gpt-4o"), fine-tunes ("ft:gpt-4o-mini:org::id")
    # and Ollama-style tags ("gpt-oss:20b").
    name = model.strip().lower().rsplit("/", 1)[-1].removeprefix("ft:").split(":", 1)[0]
    return O200K if name.startswith(_O200K_PREFIXES) else CL100K


@functools.cache
def _counter_for_encoding(encoding: str) -> TokenCounter:
    try:
        return BpeCounter(encoding)
    except ImportError:
        logger.warning("bpe-openai is not installed; token counts are heuristic estimates")
        return HeuristicCounter()


def get_counter(model: str) -> TokenCounter:
    """A shared counter for `model`: o200k for GPT-4o/4.1/5 and o-series, cl100k otherwise."""
    return _counter_for_encoding(encoding_for_model(model))


def truncate_middle(
    text: str, max_tokens: int, counter: TokenCounter, marker: str = "\n[... truncated ...]\n"
) -> str:
    """`text` cut in the middle (head and tail kept, `marker` between) to at most `max_tokens`."""
    return _truncate(text, max_tokens, counter, marker, keep_tail=True)


def truncate_end(
    text: str, max_tokens: int, counter: TokenCounter, marker: str = "\n[... truncated ...]"
) -> str:
    """`text` cut at the end (head kept, `marker` appended) to at most `max_tokens`."""
    return _truncate(text, max_tokens, counter, marker, keep_tail=False)


def _truncate(
    text: str, max_tokens: int, counter: TokenCounter, marker: str, *, keep_tail: bool
) -> str:
    if counter.count(text) <= max_tokens:
        return text
    if max_tokens <= 0 or counter.count(marker) > max_tokens:
        return ""

    def candidate(k: int) -> str:
        # k characters kept from the head (and k from the tail when keeping both ends).
        if keep_tail:
            return text[:k] + marker + (text[len(text) - k :] if k else "")
        return text[:k] + marker

    # Token counts grow (almost) monotonically with k; only candidates that were
    # actually counted within the limit are ever accepted, so the result always fits.
    limit = len(text) // 2 if keep_tail else len(text)
    best = candidate(0)
    lo, hi = 1, limit
    while lo <= hi:
        mid = (lo + hi) // 2
        cand = candidate(mid)
        if counter.count(cand) <= max_tokens:
            best, lo = cand, mid + 1
        else:
            hi = mid - 1
    return best
