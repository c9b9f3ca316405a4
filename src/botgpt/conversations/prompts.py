"""Prompt text of the chat turn: titles, and the reply-language instruction."""

from __future__ import annotations


def make_title(text: str, max_chars: int) -> str:
    """A title from the first words of a message: one line, no markup, capitalised."""
    line = " ".join(text.split()).strip("\"'`*#>-_ ")
    if line:
        line = line[0].upper() + line[1:]
    if len(line) <= max_chars:
        return line or "New conversation"
    cut = line[:max_chars].rsplit(" ", 1)[0] or line[:max_chars]
    return cut.rstrip(" ,.;:") + "…"


TITLE_PROMPT = (
    "Write a short title, at most six words, for the conversation below. "
    "Reply with the title only, without quotes."
)


def clean_title(text: str, max_chars: int) -> str:
    """A model-written title made presentable: first line, no quotes, bounded length."""
    line = next((ln for ln in text.strip().splitlines() if ln.strip()), "")
    line = line.strip().strip("\"'`*#").removeprefix("Title:").strip().strip("\"'")
    return make_title(line, max_chars) if line else ""


LANGUAGES = {
    "ar": "Arabic", "de": "German", "en": "English", "es": "Spanish", "fr": "French",
    "hi": "Hindi", "id": "Indonesian", "it": "Italian", "ja": "Japanese", "ko": "Korean",
    "nl": "Dutch", "pl": "Polish", "pt": "Portuguese", "ru": "Russian", "sv": "Swedish",
    "tr": "Turkish", "uk": "Ukrainian", "vi": "Vietnamese", "zh": "Chinese",
}  # fmt: skip


def system_prompt(base: str, language: str | None) -> str:
    """The system prompt, asking for replies in `language` (a code such as "de") if given."""
    if not language:
        return base
    code = language.replace("_", "-").split("-")[0].lower()
    name = LANGUAGES.get(code, f"the language with code '{language}'")
    return f"{base}\n\nAlways reply in {name}."
