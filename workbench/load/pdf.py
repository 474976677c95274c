"""PDF text per page with pypdfium2 (PDFium), headings from the PDF's outline.

pypdfium2 was measured against pypdf (benchmarks/pdf_extract.py): it extracts text many times
faster at comparable quality. Files encrypted with an empty user password (common for SEC
filings) open without a password; files that need one are refused with a clear reason.
A page whose text layer is missing or nearly empty (under ``[ocr] min_chars`` characters) and
whose images cover a quarter of it or more, a scanned page, is rendered at 300 dpi (at most
``[ocr] max_pixels``) and read by OCR (`workbench.load.ocr`), up to ``[ocr] max_pages`` per file;
the document records those pages and their confidence (``ocr_pages``), and its metadata the pages
whose OCR failed (they keep what their text layer had; the document is indexed unless no page had
any text).
Ruled tables become rows that keep their headers (`workbench.load.pdf_tables`, ``[ingest]
pdf_tables``); the metadata counts them.
"""

from __future__ import annotations

import time

from workbench.errors import ParseError
from workbench.load.pdf_tables import TableReader, clean_text, has_figures, is_candidate, path_bounds, row_line
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


def _table_blocks(tables: TableReader, index: int, headings: tuple[str, ...], ruled: list | None, figures: bool,
                  page, textpage) -> list[Block]:
    """A page with tables (``ruled``: its path bounds when they could be a grid) as blocks: running text around them, then each table as a heading
    block (its caption, "Table" when it has none, or its header when it continues the previous
    page's) and one row block per data row under that heading; [] when the page has no table."""
    found, bands, captions = tables.read(index, page, textpage, ruled, figures)
    if not found:
        return []
    out, page_no = [], index + 1
    for band, caption, table in zip(bands, captions, found):
        if band:
            out.append(Block(text=band, page=page_no, headings=headings))
        title = table.title or caption or "Table"
        if table.continued:
            title = f"{title} (continued)"
        inner = (*headings, title)
        out.append(Block(text=" | ".join(h for h in table.header if h), page=page_no, headings=inner, kind="heading"))
        out += [Block(text=line, page=page_no, headings=inner, kind="row")
                for line in (row_line(table.header, row) for row in table.rows) if line]
    if bands[-1]:
        out.append(Block(text=bands[-1], page=page_no, headings=headings))
    return out


def load_pdf(data: bytes, stem: str, limits=None) -> ParsedDocument:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    from workbench.load.ocr import ocr_pages as typed_ocr_pages

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise ParseError("password-protected PDF: remove the password (or ask its owner) and ingest again") from None
        raise ParseError(f"corrupt or unreadable PDF ({exc})") from None
    try:
        starts = _outline(pdf)
        headings: tuple[str, ...] = ()
        blocks, broken, ocr_pages, ocr_failed, ocr_skipped = [], [], {}, {}, []
        ocr_seconds = 0.0
        tables = TableReader() if limits is None or limits.pdf_tables else None
        n_tables, table_errors, tables_seconds = 0, [], 0.0
        for i in range(len(pdf)):
            headings = starts.get(i, headings)
            try:
                page = pdf[i]
                textpage = page.get_textpage()
            except pdfium.PdfiumError:  # one damaged page: keep the others, say which ones were lost
                broken.append(i + 1)
                continue
            text = clean_text(textpage.get_text_bounded())
            text = "\n".join(line.rstrip() for line in text.split("\n")).strip()
            table_blocks = None
            started = time.perf_counter()
            bounds = path_bounds(page) if tables is not None and text else []
            ruled = bounds if is_candidate(bounds) else None
            figures = tables is not None and has_figures(text)
            if ruled or figures:
                try:
                    table_blocks = _table_blocks(tables, i, headings, ruled, figures, page, textpage)
                except Exception as exc:  # noqa: BLE001 - a table the finder chokes on keeps the page's text
                    table_errors.append(f"{i + 1}: {type(exc).__name__}")
            tables_seconds += time.perf_counter() - started
            textpage.close()
            if table_blocks:
                page.close()
                blocks += table_blocks
                n_tables += sum(1 for b in table_blocks if b.kind == "heading")
                continue
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
    if n_tables:
        meta["tables"] = str(n_tables)
    if table_errors:
        meta["table_errors"] = ", ".join(table_errors[:20])
    if broken and not blocks:
        raise ParseError(f"corrupt PDF: no page could be read ({len(broken)} damaged)")
    if broken:
        meta["unreadable_pages"] = ", ".join(map(str, broken))
    if ocr_failed:
        first = next(iter(ocr_failed.values()))
        meta["ocr_failed_pages"] = f"{', '.join(map(str, ocr_failed))}: {first}"
    if ocr_skipped:
        meta["ocr_skipped_pages"] = f"{len(ocr_skipped)} scanned pages beyond [ocr] max_pages, from page {ocr_skipped[0]}"
    if not blocks and ocr_failed:
        raise ParseError(f"no extractable text: a scanned PDF, and OCR failed ({first})")
    title = meta.get("Title", "").strip() or stem
    return ParsedDocument(format="pdf", title=title, blocks=tuple(blocks), metadata=dict(meta),
                          ocr_pages=typed_ocr_pages(ocr_pages), ocr_seconds=round(ocr_seconds, 2) if ocr_pages else 0.0,
                          tables_seconds=round(tables_seconds, 3))
