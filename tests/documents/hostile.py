"""Hostile documents built in memory: a DOCX bomb, a PDF bomb, deep HTML, many pages."""

from __future__ import annotations

import io
import zipfile
import zlib

from tests.documents import samples

# One empty, styled paragraph: about 50 bytes of XML that compress to almost nothing.
EMPTY_PARAGRAPH = b'<w:p><w:pPr><w:pStyle w:val="Normal"/></w:pPr></w:p>'


def docx_bomb(paragraphs: int = 1_000_000) -> bytes:
    """A valid .docx whose body is `paragraphs` empty paragraphs (1M: ~200 KB -> ~50 MB)."""
    base = samples.make_docx("Quarterly report", ["Revenue grew."])
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(base)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bomb,
    ):
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "word/document.xml":
                # The real heading and paragraph stay; the empty ones follow them.
                head, _, tail = data.rpartition(b"<w:sectPr")
                data = head + EMPTY_PARAGRAPH * paragraphs + b"<w:sectPr" + tail
            bomb.writestr(item.filename, data)
    return out.getvalue()


def pdf_bomb(inflated_mb: int = 100) -> bytes:
    """A one-page PDF whose content stream inflates from ~100 KB to `inflated_mb` MB."""
    stream = zlib.compress(b" " * (inflated_mb * 1024 * 1024), 9)
    pdf = samples.make_pdf(["Cover page"])
    # Swap the page's plain content stream for the compressed one (offsets are rebuilt below).
    plain = b"BT /F1 12 Tf 72 720 Td (Cover page) Tj ET"
    objects = pdf.split(b"\nendobj\n")
    rebuilt = io.BytesIO()
    rebuilt.write(b"%PDF-1.4\n")
    offsets = []
    for part in objects[:-1]:
        body = part[part.index(b" 0 obj\n") + len(b" 0 obj\n") :]
        number = int(part[: part.index(b" 0 obj\n")].split(b"\n")[-1])
        if plain in body:
            body = (
                b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream)
                + stream
                + b"\nendstream"
            )
        offsets.append(rebuilt.tell())
        rebuilt.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = rebuilt.tell()
    rebuilt.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1))
    for offset in offsets:
        rebuilt.write(b"%010d 00000 n \n" % offset)
    rebuilt.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(offsets) + 1, xref)
    )
    return rebuilt.getvalue()


def deep_html(depth: int) -> bytes:
    """An HTML page with `depth` nested <div>s around one sentence."""
    return (
        b"<!doctype html><html><body>"
        + b"<div>" * depth
        + b"Deep down there is one sentence."
        + b"</div>" * depth
        + b"</body></html>"
    )
