"""Chunking: exact spans, structure boundaries, overlap, sizes and page mapping."""

from __future__ import annotations

import itertools

import pytest

from botgpt.documents.chunking import (
    Chunk,
    approx_token_count,
    chunk_document,
    chunk_text,
    embedding_text,
)
from botgpt.documents.parsing import Heading, parse_document


def words(text: str) -> int:
    """A deterministic token counter for tests: one token per whitespace-separated word."""
    return len(text.split())


def assert_exact_spans(text: str, chunks: list[Chunk]) -> None:
    for index, chunk in enumerate(chunks):
        assert chunk.ordinal == index
        assert text[chunk.char_start : chunk.char_end] == chunk.text
        assert chunk.text == chunk.text.strip()


def sentences(n: int, prefix: str = "Sentence") -> str:
    return " ".join(f"{prefix} {i} has five words." for i in range(n))


def test_short_text_is_one_chunk() -> None:
    chunks = chunk_text("Just a few words here.", count_tokens=words)
    assert len(chunks) == 1
    assert chunks[0].text == "Just a few words here."
    assert (chunks[0].char_start, chunks[0].char_end, chunks[0].token_count) == (0, 22, 5)
    assert chunks[0].page == 1 and chunks[0].heading == ""


def test_paragraphs_are_packed_and_never_cut_when_they_fit() -> None:
    paragraphs = [f"Paragraph {i} " + "word " * 8 for i in range(6)]  # 10 words each
    text = "\n\n".join(p.strip() for p in paragraphs)
    chunks = chunk_text(text, chunk_tokens=25, overlap_tokens=0, count_tokens=words)
    assert_exact_spans(text, chunks)
    assert [c.token_count for c in chunks] == [20, 20, 20]
    for chunk in chunks:
        # every chunk starts and ends on a paragraph boundary
        assert chunk.text.startswith("Paragraph")
        assert chunk.char_end == len(text) or text[chunk.char_end : chunk.char_end + 2] == "\n\n"


def test_oversize_paragraph_splits_on_sentences_then_words() -> None:
    text = sentences(10)  # 50 words, one paragraph
    chunks = chunk_text(text, chunk_tokens=12, overlap_tokens=0, count_tokens=words)
    assert_exact_spans(text, chunks)
    assert all(c.token_count <= 12 for c in chunks)
    assert all(c.text.endswith(".") for c in chunks)  # cut at sentence ends
    long_sentence = " ".join(f"w{i}" for i in range(30))
    chunks = chunk_text(long_sentence, chunk_tokens=8, overlap_tokens=0, count_tokens=words)
    assert_exact_spans(long_sentence, chunks)
    assert [c.token_count for c in chunks] == [8, 8, 8, 6]


def test_overlap_repeats_the_tail_of_the_previous_chunk() -> None:
    text = sentences(20)
    chunks = chunk_text(text, chunk_tokens=20, overlap_tokens=5, count_tokens=words)
    assert_exact_spans(text, chunks)
    assert len(chunks) > 2
    for previous, current in itertools.pairwise(chunks):
        assert current.char_start < previous.char_end  # spans overlap
        shared = text[current.char_start : previous.char_end]
        assert 0 < words(shared) <= 5
        assert previous.text.endswith(shared)
        assert current.token_count <= 20
    assert chunks[-1].char_end == len(text)


def test_overlap_falls_back_to_words_inside_a_long_sentence() -> None:
    text = " ".join(f"w{i}" for i in range(40))
    chunks = chunk_text(text, chunk_tokens=10, overlap_tokens=3, count_tokens=words)
    assert_exact_spans(text, chunks)
    for previous, current in itertools.pairwise(chunks):
        shared = text[current.char_start : previous.char_end]
        assert words(shared) == 3


def test_no_overlap_across_headings_and_heading_paths() -> None:
    md = (
        "# Guide\n\nIntro words here.\n\n## Install\n\n"
        + sentences(6, "Install")
        + "\n\n## Usage\n\n### Basics\n\n"
        + sentences(2, "Usage")
    )
    doc = parse_document(md.encode(), "guide.md")
    chunks = chunk_document(doc, chunk_tokens=16, overlap_tokens=4, count_tokens=words)
    assert_exact_spans(doc.full_text, chunks)
    headings = [c.heading for c in chunks]
    assert headings[0] == "Guide"
    assert "Guide > Install" in headings
    assert headings[-1] == "Guide > Usage > Basics"
    # A chunk never contains text from two sections.
    for chunk in chunks:
        assert not ("Install" in chunk.text and "Usage" in chunk.text)
    # '## Usage' has no body of its own: it is kept with '### Basics' rather than alone.
    last = chunks[-1]
    assert last.text.startswith("## Usage") and "### Basics" in last.text
    install_chunks = [c for c in chunks if c.heading == "Guide > Install"]
    assert install_chunks[0].text.startswith("## Install")


def test_pages_of_chunks() -> None:
    text = "First page text.\n\nSecond page text.\n\nThird page text."
    starts = [(0, 1), (text.index("Second"), 2), (text.index("Third"), 3)]
    chunks = chunk_text(
        text, page_starts=starts, chunk_tokens=6, overlap_tokens=0, count_tokens=words
    )
    assert [(c.page, c.page_end) for c in chunks] == [(1, 2), (3, 3)]
    assert_exact_spans(text, chunks)


def test_chunk_document_uses_parsed_pages() -> None:
    doc = parse_document(b"alpha beta\n\ngamma delta", "a.txt")
    chunks = chunk_document(doc, chunk_tokens=2, overlap_tokens=0, count_tokens=words)
    assert [c.text for c in chunks] == ["alpha beta", "gamma delta"]
    assert chunks[1].char_start == doc.full_text.index("gamma")


def test_headings_outside_text_are_ignored() -> None:
    chunks = chunk_text("body text", headings=[Heading(1, "ghost", 500, 505)], count_tokens=words)
    assert [c.text for c in chunks] == ["body text"]


def test_giant_word_is_cut_by_characters() -> None:
    text = "x" * 5000
    chunks = chunk_text(text, chunk_tokens=50, overlap_tokens=0)
    assert_exact_spans(text, chunks)
    assert all(c.token_count <= 50 for c in chunks)
    assert "".join(c.text for c in chunks) == text


def test_embedding_text_adds_heading_context_once() -> None:
    base = Chunk(0, "Body text.", 1, 1, 0, 10, 2, "Guide > Install")
    assert embedding_text(base) == "Guide > Install\n\nBody text."
    starts_with_heading = Chunk(0, "## Install\n\nBody", 1, 1, 0, 16, 3, "Guide > Install")
    assert embedding_text(starts_with_heading) == starts_with_heading.text
    assert embedding_text(Chunk(0, "x", 1, 1, 0, 1, 1, "")) == "x"


def test_approx_token_count() -> None:
    assert approx_token_count("") == 0
    assert approx_token_count("hello, world!") == 4
    assert approx_token_count("internationalization") > 1


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (10, 10), (10, -1)])
def test_invalid_sizes(size: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk_text("text", chunk_tokens=size, overlap_tokens=overlap)


def test_minilm_token_counter_is_usable() -> None:
    from botgpt.retrieval.embedders import MiniLMOnnxEmbedder

    counter = MiniLMOnnxEmbedder().count_tokens
    text = sentences(200)
    chunks = chunk_text(text, chunk_tokens=64, overlap_tokens=8, count_tokens=counter)
    assert_exact_spans(text, chunks)
    assert all(c.token_count <= 64 for c in chunks)


def test_token_offsets_fast_path_matches_counting() -> None:
    from botgpt.retrieval.embedders import MiniLMOnnxEmbedder

    minilm = MiniLMOnnxEmbedder()
    md = "# Results\n\n" + sentences(80) + "\n\nShort closing paragraph, with punctuation!"
    doc = parse_document(md.encode(), "r.md")
    slow = chunk_document(doc, chunk_tokens=48, overlap_tokens=8, count_tokens=minilm.count_tokens)
    fast = chunk_document(
        doc,
        chunk_tokens=48,
        overlap_tokens=8,
        count_tokens=minilm.count_tokens,
        token_offsets=minilm.token_offsets,
    )
    assert fast == slow
    assert all(c.token_count == minilm.count_tokens(c.text) for c in fast)
