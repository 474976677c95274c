"""PDF text per page with pypdfium2 (PDFium), headings from the PDF's outline.

pypdfium2 was measured against pypdf (benchmarks/pdf_extract.py): it extracts text many times
faster at comparable quality. Files encrypted with an empty user password (common for SEC
filings) open without a password; files that need one are refused with a clear reason.
A page whose text layer is missing or nearly empty (under ``[ocr] min_chars`` characters) and
whose images cover a quarter of it or more, a scanned page, is rendered at 300 dpi (at most
``[ocr] max_pixels``) and read by OCR (`workbench.load.ocr`), up to ``[ocr] max_pages`` per file;
the document's metadata records those pages and their confidence, and pages whose OCR failed
(they keep what their text layer had; the document is indexed unless no page had any text).
"""

from __future__ import annotations

import time

from workbench.errors import ParseError
from workbench.records import Block, ParsedDocument


def _outline(pdf) -> dict[int, tuple[str, ...]]:
    """0-based page index -> heading path of the outline entries starting on that page."""
    starts: dict[int, tuple[str, ...]] = {}
    stack: list[str] = []
    try:
        for item in pdf.get_toc(max_depth=6):
            title = " ".join((item.get_title() or "").split())
            del stack[item.level :]
            stack.append(title)
            dest = item.get_dest()
            index = dest.get_index() if dest is not None else None
            if index is not None:
                starts[index] = tuple(stack)
    except Exception:  # a broken outline must not lose the text
        return {}
    return starts


def _scanned(page) -> bool:
    """Whether images cover at least a quarter of ``page`` (a scan, not a logo on an empty page)."""
    import pypdfium2.raw as pdfium_c

    width, height = page.get_size()
    covered = 0.0
    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=2):
        left, bottom, right, top = obj.get_bounds()
        covered += max(0.0, min(right, width) - max(left, 0.0)) * max(0.0, min(top, height) - max(bottom, 0.0))
        if covered >= 0.25 * width * height:
            return True
    return False


def _ocr_page(page, limits):
    """Render ``page`` at 300 dpi and OCR it; an oversized page (a scan saved at 72 dpi is a page
    of many feet) is drawn at most 3,508 pixels long, the long side of A4 at 300 dpi, and never
    above the pixel limit."""
    from workbench.load.ocr import read_image

    width, height = page.get_size()  # points
    scale = min(300 / 72, 3508 / max(1.0, width, height), (limits.ocr_max_pixels / max(1.0, width * height)) ** 0.5)
    bitmap = page.render(scale=scale, grayscale=True)
    try:
        return read_image(bitmap.to_pil(), limits.ocr_languages, limits.ocr_page_timeout_s)
    finally:
        bitmap.close()


def load_pdf(data: bytes, stem: str, limits=None) -> ParsedDocument:
    import pypdfium2 as pdfium

    from workbench.load.ocr import ocr_metadata

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise ParseError("password-protected PDF: remove the password (or ask its owner) and ingest again") from None
        raise ParseError(f"corrupt or unreadable PDF ({exc})") from None
    try:
        starts = _outline(pdf)
        headings: tuple[str, ...] = ()
        blocks, broken, ocr_pages, ocr_failed, ocr_skipped = [], [], {}, {}, []
        ocr_seconds = 0.0
        for i in range(len(pdf)):
            headings = starts.get(i, headings)
            try:
                page = pdf[i]
                textpage = page.get_textpage()
            except pdfium.PdfiumError:  # one damaged page: keep the others, say which ones were lost
                broken.append(i + 1)
                continue
            text = textpage.get_text_bounded().replace("\r\n", "\n").replace("\r", "\n")
            textpage.close()
            text = "\n".join(line.rstrip() for line in text.split("\n")).strip()
            if limits is not None and limits.ocr_languages and len(text) < limits.ocr_min_chars and _scanned(page):
                if len(ocr_pages) >= limits.ocr_max_pages:
                    ocr_skipped.append(i + 1)
                else:
                    started = time.perf_counter()
                    try:
                        ocr_pages[i + 1] = _ocr_page(page, limits)
                        text = ocr_pages[i + 1].text or text
                    except ParseError as exc:  # the page keeps what its text layer had; the others are read
                        ocr_failed[i + 1] = str(exc)
                    ocr_seconds += time.perf_counter() - started
            page.close()
            if text:
                blocks.append(Block(text=text, page=i + 1, headings=headings))
        meta = pdf.get_metadata_dict(skip_empty=True)
    finally:
        pdf.close()
    if broken and not blocks:
        raise ParseError(f"corrupt PDF: no page could be read ({len(broken)} damaged)")
    if broken:
        meta["unreadable_pages"] = ", ".join(map(str, broken))
    meta.update(ocr_metadata(ocr_pages, ocr_seconds))
    if ocr_failed:
        first = next(iter(ocr_failed.values()))
        meta["ocr_failed_pages"] = f"{', '.join(map(str, ocr_failed))}: {first}"
    if ocr_skipped:
        meta["ocr_skipped_pages"] = f"{len(ocr_skipped)} scanned pages beyond [ocr] max_pages, from page {ocr_skipped[0]}"
    if not blocks and ocr_failed:
        raise ParseError(f"no extractable text: a scanned PDF, and OCR failed ({first})")
    title = meta.get("Title", "").strip() or stem
    return ParsedDocument(format="pdf", title=title, blocks=tuple(blocks), metadata=dict(meta))
