"""parse_document / detect_type on tiny fixtures built in the tests (PDF, DOCX, HTML, MD, TXT)."""

from __future__ import annotations

import io
import zipfile

import pytest

from botgpt.documents.parsing import (
    CorruptDocumentError,
    EmptyDocumentError,
    EncryptedDocumentError,
    NoExtractableTextError,
    ParsedDocument,
    ParseError,
    UndecodableTextError,
    UnsupportedTypeError,
    detect_type,
    parse_document,
)


def make_pdf(pages: list[list[str] | None]) -> bytes:
    """A valid PDF; each page shows the given lines (None = a page with no text, like a scan)."""
    objects: list[bytes] = []
    kids = []
    page_objects: list[tuple[int, int | None]] = []
    next_id = 4  # 1 catalog, 2 pages, 3 font
    for lines in pages:
        page_id, content_id = next_id, (next_id + 1 if lines is not None else None)
        next_id += 2 if lines is not None else 1
        page_objects.append((page_id, content_id))
        kids.append(f"{page_id} 0 R")
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for (_page_id, content_id), lines in zip(page_objects, pages, strict=True):
        contents = f" /Contents {content_id} 0 R" if content_id else ""
        objects.append(
            (
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                f"/Resources << /Font << /F1 3 0 R >> >>{contents} >>"
            ).encode()
        )
        if lines is not None:
            ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
            for line in lines:
                escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
                ops.append(f"({escaped}) Tj T*")
            ops.append("ET")
            stream = "\n".join(ops).encode()
            objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def make_docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Quarterly Report", 0)
    document.add_heading("Introduction", 1)
    document.add_paragraph("Revenue grew by twelve percent in the third quarter.")
    document.add_heading("Details", 2)
    document.add_paragraph("Costs were stable.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Region"
    table.cell(0, 1).text = "Sales"
    table.cell(1, 0).text = "North"
    table.cell(1, 1).text = "42"
    document.add_paragraph("Closing remarks.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def assert_offsets_consistent(doc: ParsedDocument) -> None:
    for page in doc.pages:
        assert doc.full_text[page.start_offset : page.end_offset] == page.text
        if page.text:
            assert doc.page_for_offset(page.start_offset) == page.number
            assert doc.page_for_offset(page.end_offset - 1) == page.number


def test_pdf_pages_and_offsets() -> None:
    data = make_pdf([["Alpha page one.", "Second line."], ["Beta page two."], ["Gamma three."]])
    doc = parse_document(data, "report.pdf")
    assert doc.detected_type == "pdf"
    assert [p.number for p in doc.pages] == [1, 2, 3]
    assert "Alpha page one." in doc.pages[0].text and "Second line." in doc.pages[0].text
    assert "Beta page two." in doc.pages[1].text
    assert_offsets_consistent(doc)
    beta = doc.full_text.index("Beta")
    assert doc.page_for_offset(beta) == 2
    assert doc.page_for_offset(doc.full_text.index("Gamma")) == 3


def test_pdf_with_a_blank_page_keeps_numbering() -> None:
    doc = parse_document(make_pdf([["First."], None, ["Third."]]), "x.pdf")
    assert [p.number for p in doc.pages] == [1, 2, 3]
    assert doc.pages[1].text == ""
    assert doc.page_for_offset(doc.full_text.index("Third")) == 3
    assert_offsets_consistent(doc)


def test_scanned_pdf_without_text() -> None:
    with pytest.raises(NoExtractableTextError) as info:
        parse_document(make_pdf([None, None]), "scan.pdf")
    assert info.value.code == "no_extractable_text"
    assert "OCR" in info.value.message


def _encrypt(data: bytes, user_password: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_encrypted_pdf() -> None:
    data = _encrypt(make_pdf([["Top secret plans."]]), "secret")
    with pytest.raises(EncryptedDocumentError) as info:
        parse_document(data, "locked.pdf")
    assert info.value.code == "encrypted_pdf"
    assert "password" in info.value.message


def test_pdf_with_owner_password_only_opens() -> None:
    data = _encrypt(make_pdf([["Readable but not printable."]]), "")
    doc = parse_document(data, "restricted.pdf")
    assert "Readable but not printable." in doc.full_text


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog",
        make_pdf([["Hello."]])[:120],
        b"%PDF-1.7\n" + bytes(range(256)) * 4,
    ],
)
def test_corrupt_pdf(data: bytes) -> None:
    with pytest.raises(CorruptDocumentError) as info:
        parse_document(data, "broken.pdf")
    assert info.value.code == "corrupt_file"
    assert isinstance(info.value, ParseError)


def test_docx_paragraphs_headings_and_tables() -> None:
    doc = parse_document(make_docx(), "report.docx")
    assert doc.detected_type == "docx"
    assert doc.title == "Quarterly Report"
    text = doc.full_text
    assert text.index("Introduction") < text.index("Revenue grew") < text.index("Costs")
    assert "Region | Sales" in text and "North | 42" in text
    assert text.index("North | 42") < text.index("Closing remarks.")
    levels = [(h.level, h.text) for h in doc.headings]
    assert levels == [(1, "Quarterly Report"), (1, "Introduction"), (2, "Details")]
    for heading in doc.headings:
        assert text[heading.start : heading.end] == heading.text
    assert [p.number for p in doc.pages] == [1]
    assert_offsets_consistent(doc)


def test_corrupt_docx() -> None:
    data = make_docx()
    with pytest.raises(CorruptDocumentError):
        parse_document(data[: len(data) // 2], "broken.docx")


def test_html_drops_script_and_style_and_keeps_structure() -> None:
    html = b"""<!DOCTYPE html><html><head><title>Guide</title>
    <style>body { color: red }</style><script>alert("x")</script></head>
    <body><nav>Menu</nav><h1>Install</h1><p>Run the <b>installer</b> and
    wait.</p><script>var hidden = 1;</script><h2>Usage</h2><ul><li>One</li><li>Two</li></ul>
    <table><tr><td>a</td><td>b</td></tr></table><pre>code   block</pre></body></html>"""
    doc = parse_document(html, "guide.html")
    assert doc.detected_type == "html"
    assert doc.title == "Guide"
    assert "alert" not in doc.full_text and "hidden" not in doc.full_text
    assert "color" not in doc.full_text
    assert "Run the installer and wait." in doc.full_text
    assert "One\n\nTwo" in doc.full_text
    assert "a | b" in doc.full_text
    assert "code   block" in doc.full_text  # whitespace inside <pre> is kept
    assert [(h.level, h.text) for h in doc.headings] == [(1, "Install"), (2, "Usage")]
    for heading in doc.headings:
        assert doc.full_text[heading.start : heading.end] == heading.text


def test_markdown_headings_and_offsets() -> None:
    md = "# Title\n\nIntro text.\n\n```\n# not a heading\n```\n\n## Part two\n\nMore.\n"
    doc = parse_document(md.encode(), "notes.md")
    assert doc.detected_type == "markdown"
    assert [(h.level, h.text) for h in doc.headings] == [(1, "Title"), (2, "Part two")]
    for heading in doc.headings:
        assert doc.full_text[heading.start : heading.end].lstrip("# ") == heading.text
    assert doc.title == "Title"


def test_plain_text_normalised() -> None:
    doc = parse_document(b"Line one\r\nLine two  \r\n\r\n\r\n\r\nPara two\n", "a.txt")
    assert doc.detected_type == "text"
    assert doc.full_text == "Line one\nLine two\n\nPara two"
    assert doc.pages[0].start_offset == 0


def test_utf16_text_with_bom() -> None:
    doc = parse_document("Grüße aus Köln".encode("utf-16"), "de.txt")
    assert doc.full_text == "Grüße aus Köln"


def test_undecodable_text() -> None:
    with pytest.raises(UndecodableTextError) as info:
        parse_document("café au lait".encode("latin-1"), "menu.txt")
    assert info.value.code == "undecodable_text"
    assert "UTF-8" in info.value.message


@pytest.mark.parametrize("data", [b"", b"   \n\n  \t", b"<html><body>  </body></html>"])
def test_empty_documents(data: bytes) -> None:
    with pytest.raises(EmptyDocumentError) as info:
        parse_document(data, "empty.html" if data.startswith(b"<") else "empty.txt")
    assert info.value.code == "empty_document"


def _zip(names: list[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, "x")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "filename", "expected"),
    [
        (make_pdf([["x"]]), "notes.txt", "pdf"),  # content wins over the extension
        (b"junk before header\n" + make_pdf([["x"]]), "a.bin", "pdf"),
        (make_docx(), "file.bin", "docx"),
        (_zip(["xl/workbook.xml"]), "sheet.docx", None),  # a zip that is not Word
        (b"<!DOCTYPE html><html><body><p>x</p></body></html>", "page.txt", "html"),
        (b"<div><p>fragment</p></div>", "upload", "html"),
        (b"# Title\n\ntext", "readme.md", "markdown"),
        (b"plain words", "file.pdf", "text"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image.txt", None),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00", "old.doc", None),
    ],
)
def test_detect_type(data: bytes, filename: str, expected: str | None) -> None:
    assert detect_type(data, filename) == expected


def test_unsupported_type_raises() -> None:
    with pytest.raises(UnsupportedTypeError) as info:
        parse_document(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image.png")
    assert info.value.code == "unsupported_type"
