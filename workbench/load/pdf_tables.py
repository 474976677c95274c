"""Ruled tables of a PDF page as rows that keep their column headers.

A page is a candidate when the bounds of its drawn paths (PDFium) could be a grid (`is_candidate`);
only candidates are opened with pdfplumber (pdfminer.six), whose lattice finder turns the rules
into cells, and a found table is kept when half its cells hold text that is mostly letters and digits. Measured on the page benchmark's 21 manuals
(benchmarks/page_retrieval.py): see the README. A table needs two rows and two columns, and a header
row with at least two named cells; one that starts a page, with the column count of the table that
ended the page before, and no header of its own, continues that table and takes its header.

Each data row becomes one line ``Header: value | Header: value`` (how spreadsheet rows read), in a
block whose heading path ends with the table's caption (the short line just above it, or "Table"
when there is none); the page's running text is read from the regions outside the tables, so
nothing is indexed twice. Leaves out: tables without rules (aligned text only), which stay running
text; merged header cells spanning several columns keep the text of their first column only.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

_CAPTION_CHARS = 120


@dataclass(frozen=True, slots=True)
class PageTable:
    """One table found on a page: its box (PDF points from the page's top-left), caption, rows."""

    bbox: tuple[float, float, float, float]  # x0, top, x1, bottom
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    continued: bool = False  # the header came from the table that ended the previous page
    title: str = ""  # leading rows with a single cell of text above the header ("Table 3: parameters")


def is_candidate(page) -> bool:
    """Whether a PDFium page's drawn paths could be a ruled table (cheap: bounds only, no text):
    at least 3 horizontal edges (rules, or the tops and bottoms of boxes) whose median spacing is
    a text row or more (9 pt: music staves, 5 lines a few points apart, are not tables), and at
    least 3 vertical edges at distinct x (two columns)."""
    import statistics

    import pypdfium2.raw as pdfium_c

    ys: set[int] = set()
    xs: set[int] = set()
    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_PATH], max_depth=2):
        left, bottom, right, top = obj.get_bounds()
        width, height = right - left, top - bottom
        if height <= 2 and width >= 10:
            ys.add(round(bottom))
        elif width <= 2 and height >= 8:
            xs.add(round(left))
        elif width > 2 and height > 2:
            ys.update((round(bottom), round(top)))
            xs.update((round(left), round(right)))
    if len(ys) < 3 or len(xs) < 3:
        return False
    ordered = sorted(ys)
    return statistics.median(b - a for a, b in zip(ordered, ordered[1:])) >= 9


_MIN_FILLED = 0.5  # share of a table's cells that hold text
_MIN_WORDY = 0.5  # share of letters and digits in its text (music glyphs and rules are not)


def _looks_like_table(rows: list[tuple[str, ...]]) -> bool:
    cells = [c for r in rows for c in r]
    filled = [c for c in cells if c]
    text = "".join(filled)
    return (len(rows) >= 2 and max(len(r) for r in rows) >= 2 and len(filled) >= _MIN_FILLED * len(cells)
            and sum(ch.isalnum() for ch in text) >= _MIN_WORDY * max(1, len(text.replace(" ", ""))))


def _clean(cell) -> str:
    return " ".join(str(cell).split()) if cell is not None else ""


class TableReader:
    """Finds ruled tables page by page in one PDF; pdfplumber opens the file only when a page asks."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._pdf = None
        self._last: PageTable | None = None  # the table that ended the previous page read
        self._last_page = -1
        self._last_caption = ""  # the caption of the table that ended the previous page

    def read(self, index: int) -> tuple[list[PageTable], list[str], list[str]]:
        """The tables of 0-based page ``index`` top to bottom, the page's text around them (one band
        per gap: before the first table, between tables, after the last; text beside a table joins
        the band above it) and each table's caption (the last short line just above it, or "").
        No tables: ([], [], [])."""
        import pdfplumber

        if self._pdf is None:
            self._pdf = pdfplumber.open(io.BytesIO(self.data))
        page = self._pdf.pages[index]
        try:
            found = []
            for table in sorted(page.find_tables(), key=lambda t: t.bbox[1]):
                rows = [tuple(_clean(c) for c in row) for row in table.extract()]
                rows = [r for r in rows if any(r)]
                if not _looks_like_table(rows):
                    continue
                found.append(self._with_header(tuple(table.bbox), rows, index, page.height, not found))
            bands, captions = _text_outside(page, found) if found else ([], [])
        finally:
            page.close()
        if found and found[0].continued and not found[0].title and self._last_caption:
            found[0] = PageTable(found[0].bbox, found[0].header, found[0].rows, True, self._last_caption)
        if found:
            self._last_caption = found[-1].title or captions[-1]
        self._last = found[-1] if found else None
        self._last_page = index
        return found, bands, captions

    def _with_header(self, bbox, rows, index: int, height: float, first: bool) -> PageTable:
        def named(row) -> int:
            return sum(1 for c in row if c)

        title = []
        while len(rows) > 2 and named(rows[0]) < 2 and any(named(r) >= 2 for r in rows[1:]):
            title += [c for c in rows.pop(0) if c]
        if title:
            table = self._with_header(bbox, rows, index, height, False)
            return PageTable(table.bbox, table.header, table.rows, False, " ".join(title))
        prev = self._last if self._last_page == index - 1 else None
        at_top = bbox[1] < 0.2 * height
        width = len(rows[0])
        named = sum(1 for c in rows[0] if c)
        if first and at_top and prev is not None and len(prev.header) == width:
            body = rows[1:] if rows[0] == prev.header else rows  # a header repeated on the new page
            return PageTable(bbox, prev.header, tuple(body), continued=True, title=prev.title)
        if named >= 2:
            return PageTable(bbox, rows[0], tuple(rows[1:]))
        return PageTable(bbox, tuple(f"column {i + 1}" for i in range(width)), tuple(rows))

    def close(self) -> None:
        if self._pdf is not None:
            self._pdf.close()
            self._pdf = None


def row_line(header: tuple[str, ...], row: tuple[str, ...]) -> str:
    """'Header: value | Header: value' for a row's non-empty cells."""
    return " | ".join(f"{header[i] if i < len(header) and header[i] else f'column {i + 1}'}: {v}"
                      for i, v in enumerate(row) if v)


def _text_outside(page, tables: list[PageTable]) -> tuple[list[str], list[str]]:
    """(bands of text around ``tables`` on a pdfplumber page, captions); see `TableReader.read`."""
    width, height = float(page.width), float(page.height)

    def box(left, top, right, bottom) -> str:
        left, top, right, bottom = max(0.0, left), max(0.0, top), min(width, right), min(height, bottom)
        if right - left < 1 or bottom - top < 1:
            return ""
        return (page.crop((left, top, right, bottom), strict=False).extract_text() or "").strip()

    bands, captions, top = [], [], 0.0
    for t in tables:
        x0, t_top, x1, t_bottom = t.bbox
        above = box(0, top, width, t_top)
        lines = [line.strip() for line in above.split("\n") if line.strip()]
        captions.append(lines[-1] if lines and len(lines[-1]) <= _CAPTION_CHARS else "")
        beside = [box(0, t_top, x0, t_bottom), box(x1, t_top, width, t_bottom)]
        bands.append("\n".join(x for x in (above, *beside) if x))
        top = max(top, t_bottom)
    bands.append(box(0, top, width, height))
    return bands, captions
