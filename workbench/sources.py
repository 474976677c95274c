"""The source viewer's data: a cited passage in its surrounding text, and a PDF page as an image.

`source_view` reads only the catalog (the extracted text kept at ingest); `render_pdf_page`
opens the original file with pdfium. Callers check permissions first (`workbench.access`).
Leaves out: rendering Office formats (the viewer shows their extracted text and offers the file).
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.records import Chunk, Document, _Record

CONTEXT_CHARS = 1200


@dataclass(frozen=True, slots=True)
class SourceView(_Record):
    """A chunk, its document, and the text just before and after it."""

    chunk: Chunk
    document: Document
    before: str
    after: str

    @property
    def is_pdf(self) -> bool:
        return self.document.format == "pdf" and not self.document.part and self.chunk.page is not None


def source_view(catalog, chunk: Chunk, document: Document, context_chars: int = CONTEXT_CHARS) -> SourceView:
    """The passage ``chunk`` with up to ``context_chars`` of its document's text on each side."""
    text = catalog.document_text(chunk.doc_id)
    before = text[max(0, chunk.start - context_chars): chunk.start]
    after = text[chunk.end: chunk.end + context_chars]
    if chunk.start > context_chars:
        before = "…" + before[before.find(" ") + 1:]
    if chunk.end + context_chars < len(text):
        after = after[: after.rfind(" ")] + "…"
    return SourceView(chunk, document, before, after)


def render_pdf_page(path: str, page: int, width_px: int = 1000) -> bytes:
    """PNG bytes of page ``page`` (1-based) of the PDF at ``path``, ``width_px`` wide."""
    import io

    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(path)
    try:
        p = pdf[page - 1]
        scale = width_px / max(p.get_width(), 1.0)
        image = p.render(scale=min(scale, 4.0)).to_pil()
        buf = io.BytesIO()
        image.save(buf, format="PNG", optimize=False)
        return buf.getvalue()
    finally:
        pdf.close()
