"""Tables of a PDF page as rows that keep their column headers.

Two kinds. **Ruled tables**: a page is a candidate when the bounds of its drawn paths (PDFium) could
be a grid (`is_candidate`); only candidates are opened with pdfplumber (pdfminer.six), whose lattice
finder turns the rules into cells, and a found table is kept when half its cells hold text that is
mostly letters and digits. **Tables of figures without rules** (financial statements): a page whose
text has 4 or more rows "label, then figures only" (`has_figures`) has its words' positions read
(PDFium's character boxes, or pdfplumber's words when it has the page open anyway); figures flush
right in one place on half the rows make a column (`_aligned`), and the line above, or a first line
of years and words, names the columns.

A table needs a header row with at least two named cells, or else takes the header of the table
that ended the previous page when it starts this one with as many columns (a continued table).
Each data row becomes one line ``Header: value | Header: value`` (how spreadsheet rows read; a
first column without a header is the row's label), in a block whose heading path ends with the
table's caption (a title row, the short line just above it, or "Table"); the page's running text is
read from the regions outside the tables, so nothing is indexed twice. Leaves out: tables of words
without rules, which stay running text; merged header cells spanning several columns keep the text
of their first column only.
"""

from __future__ import annotations

import io
import re
import statistics
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


# a figure: 1,250  (3.4)  -12.5%  $1,000  —
_NUMBER = re.compile(r"^\(?[-–—+$€£]?\d(?:[\d,.']*\d)?%?\)?$|^[–—-]$")  # '26,' (an index entry) is not one
_LEADER = re.compile(r"^\.{2,}$|^\.$")


def _figure_row(tokens: list[str]) -> bool:
    """Whether a line's words read as a row of a table of figures: a label that starts with a
    letter and has no dot leaders (an index or contents line), then 2 or more figures and nothing
    else (prose with numbers in it is not a row)."""
    first = next((i for i, t in enumerate(tokens) if _NUMBER.match(t)), None)
    if first is None or first == 0 or not tokens[0][0].isalpha():
        return False
    figures = tokens[first:]
    return (len(figures) >= 2 and all(_NUMBER.match(t) for t in figures)
            and not any(_LEADER.match(t) for t in tokens[:first]))
_MIN_FIGURE_LINES = 4


def has_figures(text: str) -> bool:
    """Whether a page's extracted text has 4 or more lines that read like rows of a table of figures
    (`_figure_row`: 'Revenue 1,250 1,100 13.6%').
    Only such pages (about 5% of the page benchmark's manuals) have their words' positions read."""
    n = 0
    for line in text.split("\n"):
        if _figure_row(line.split()):
            n += 1
            if n >= _MIN_FIGURE_LINES:
                return True
    return False


def _lines(words: list[dict]) -> list[list[dict]]:
    """Words grouped into lines (tops within 2 pt), each sorted left to right, top to bottom."""
    lines: list[list[dict]] = []
    for w in sorted(words, key=lambda w: (round(w["top"]), w["x0"])):
        if lines and abs(w["top"] - lines[-1][0]["top"]) <= 2:
            lines[-1].append(w)
        else:
            lines.append([w])
    return [sorted(line, key=lambda w: w["x0"]) for line in lines]


def _columns(run: list[list[dict]]) -> list[tuple[float, float]]:
    """(left, right) of each column of figures in a run of lines: right edges (figures are set
    flush right) that half the lines share, within 6 pt."""
    edges = sorted((w["x1"], w["x0"]) for line in run for w in line if _NUMBER.match(w["text"]))
    clusters: list[list[tuple[float, float]]] = []
    for right, left in edges:
        if clusters and right - clusters[-1][-1][0] <= 6:
            clusters[-1].append((right, left))
        else:
            clusters.append([(right, left)])
    need = max(2, len(run) // 2)
    return [(min(left for _, left in c), max(right for right, _ in c)) for c in clusters if len(c) >= need]


_YEAR = re.compile(r"^(?:FY ?)?(?:19|20)\d{2}$")


def _names_columns(cells: tuple[str, ...]) -> bool:
    """Whether a line's cells over the figure columns are column names: all filled, and each a year
    or words rather than a figure."""
    values = cells[1:]
    return bool(values) and all(values) and all(_YEAR.match(v) or not _NUMBER.match(v) for v in values)


def pdfium_words(textpage, height: float) -> list[dict]:
    """The words of a PDFium text page with their boxes (points from the page's top-left, as
    pdfplumber gives them): runs of characters without white space or a jump to another line."""
    n = textpage.count_chars()
    text = textpage.get_text_range(0, n) if n else ""
    words: list[dict] = []
    current: list = []

    def close() -> None:
        if current:
            words.append({"text": "".join(c for c, _ in current), "x0": min(b[0] for _, b in current),
                          "x1": max(b[2] for _, b in current), "top": height - max(b[3] for _, b in current),
                          "bottom": height - min(b[1] for _, b in current)})
            current.clear()

    for i, ch in enumerate(text[:n]):
        if ch.isspace() or ch == "\x02":
            close()
            continue
        box = textpage.get_charbox(i, loose=True)
        if current:
            last = current[-1][1]
            if abs(box[1] - last[1]) > 3 or box[0] - last[2] > 2.5 or box[0] < last[0] - 1:
                close()
        current.append((ch, box))
    close()
    return words


def _aligned(words: list[dict], avoid: list[tuple]) -> list[tuple[tuple, tuple[str, ...], list[tuple[str, ...]]]]:
    """Tables of figures without rules among a page's ``words``: (bbox, header, rows) each. A run of 4
    or more lines with 2 or more figures each (a label line or two between them allowed), whose
    figures stand in 1 or more columns; the line just above names the columns when its words sit
    over them. Each row is (label, figure per column)."""
    def outside(w) -> bool:
        return not any(b[0] - 1 <= w["x0"] and w["x1"] <= b[2] + 1 and b[1] - 1 <= w["top"] and w["bottom"] <= b[3] + 1
                       for b in avoid)

    words = [w for w in words if outside(w)]
    if not words:
        return []
    height = statistics.median(w["bottom"] - w["top"] for w in words) or 10
    lines = _lines(words)
    figures = [i for i, line in enumerate(lines) if _figure_row([w["text"] for w in line])]
    runs: list[list[int]] = []
    for i in figures:
        if runs and i - runs[-1][-1] <= 3 and lines[i][0]["top"] - lines[runs[-1][-1]][0]["top"] <= 3.5 * height:
            runs[-1].append(i)
        else:
            runs.append([i])
    out = []
    for run in runs:
        if len(run) < _MIN_FIGURE_LINES:
            continue
        span = lines[run[0]:run[-1] + 1]
        columns = _columns([lines[i] for i in run])
        if not columns or (len(columns) == 1 and len(run) < 5):
            continue
        first_left = columns[0][0]

        def cells(line: list[dict]) -> tuple[str, ...]:
            label = " ".join(w["text"] for w in line if w["x1"] < first_left - 2)
            values = []
            for left, right in columns:
                inside = [w["text"] for w in line if w["x1"] >= first_left - 2
                          and left - 4 <= (w["x0"] + w["x1"]) / 2 <= right + 4]
                values.append(" ".join(inside))
            return (label, *values)

        rows = [cells(line) for line in span]
        top = span[0][0]["top"]
        header: tuple[str, ...] = ()
        if _names_columns(rows[0]):  # '(in millions)  2021  2020  Change': years and words over the figures
            header, rows = rows[0], rows[1:]
        else:
            above = run[0] - 1
            if above >= 0 and top - lines[above][0]["top"] <= 2.5 * height:
                candidate = cells(lines[above])
                if sum(1 for c in candidate[1:] if c) >= max(1, len(columns) // 2) and not candidate[0].endswith("."):
                    header, top = candidate, lines[above][0]["top"]
        if len(rows) < 3 or sum(1 for r in rows if r[0]) < len(rows) / 2:  # no labels: a listing, not a table
            continue
        bbox = (min(w["x0"] for line in span for w in line), top - 1,
                max(w["x1"] for line in span for w in line), span[-1][0]["bottom"] + 1)
        out.append((bbox, header, rows))
    return out


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

    def read(self, index: int, ruled: bool = True, figures: bool = False) -> tuple[list[PageTable], list[str], list[str]]:
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
            for table in sorted(page.find_tables(), key=lambda t: t.bbox[1]) if ruled else ():
                rows = [tuple(_clean(c) for c in row) for row in table.extract()]
                rows = [r for r in rows if any(r)]
                if not _looks_like_table(rows):
                    continue
                found.append(self._with_header(tuple(table.bbox), rows, index, page.height, not found))
            if figures:
                for bbox, header, rows in _aligned(page.extract_words(x_tolerance=1.5, y_tolerance=2),
                                                   [t.bbox for t in found]):
                    found.append(PageTable(bbox, header, tuple(rows)) if header else
                                 self._headerless(bbox, rows, index, page.height, not found))
                found.sort(key=lambda t: t.bbox[1])
            bands, captions = _text_outside(page, found) if found else ([], [])
        finally:
            page.close()
        return self._remember(index, found, captions), bands, captions

    def read_figures(self, index: int, textpage, width: float, height: float
                     ) -> tuple[list[PageTable], list[str], list[str]]:
        """`read` for a page without drawn rules but with rows of figures: PDFium's character boxes
        only, no pdfplumber (about 2 ms a page instead of 80)."""
        found = []
        for bbox, header, rows in _aligned(pdfium_words(textpage, height), []):
            found.append(PageTable(bbox, header, tuple(rows)) if header else
                         self._headerless(bbox, rows, index, height, not found))
        bands, captions = _bands(lambda l, t, r, b: _pdfium_box(textpage, height, l, t, r, b), width, height,
                                 found) if found else ([], [])
        return self._remember(index, found, captions), bands, captions

    def _remember(self, index: int, found: list[PageTable], captions: list[str]) -> list[PageTable]:
        if found and found[0].continued and not found[0].title and self._last_caption:
            found[0] = PageTable(found[0].bbox, found[0].header, found[0].rows, True, self._last_caption)
        if found:
            self._last_caption = found[-1].title or captions[-1]
        self._last = found[-1] if found else None
        self._last_page = index
        return found

    def _continued_from(self, bbox, width: int, index: int, height: float, first: bool) -> PageTable | None:
        """The table that ended the previous page, when this one (the first on its page, starting
        in the top fifth, with as many columns) continues it; else None."""
        prev = self._last if self._last_page == index - 1 else None
        if first and bbox[1] < 0.2 * height and prev is not None and len(prev.header) == width:
            return prev
        return None

    def _with_header(self, bbox, rows, index: int, height: float, first: bool) -> PageTable:
        def named(row) -> int:
            return sum(1 for c in row if c)

        title = []
        while len(rows) > 2 and named(rows[0]) < 2 and any(named(r) >= 2 for r in rows[1:]):
            title += [c for c in rows.pop(0) if c]
        if title:
            table = self._with_header(bbox, rows, index, height, False)
            return PageTable(table.bbox, table.header, table.rows, False, " ".join(title))
        width = len(rows[0])
        prev = self._continued_from(bbox, width, index, height, first)
        if prev is not None:
            body = rows[1:] if rows[0] == prev.header else rows  # a header repeated on the new page
            return PageTable(bbox, prev.header, tuple(body), continued=True, title=prev.title)
        if named(rows[0]) >= 2:
            return PageTable(bbox, rows[0], tuple(rows[1:]))
        return PageTable(bbox, tuple(f"column {i + 1}" for i in range(width)), tuple(rows))

    def _headerless(self, bbox, rows, index: int, height: float, first: bool) -> PageTable:
        """A table of figures with no header line: the previous page's table continued, or labels
        and unnamed columns."""
        width = len(rows[0])
        prev = self._continued_from(bbox, width, index, height, first)
        if prev is not None:
            return PageTable(bbox, prev.header, tuple(rows), continued=True, title=prev.title)
        return PageTable(bbox, ("",) + tuple(f"column {i + 1}" for i in range(1, width)), tuple(rows))

    def close(self) -> None:
        if self._pdf is not None:
            self._pdf.close()
            self._pdf = None


def row_line(header: tuple[str, ...], row: tuple[str, ...]) -> str:
    """'Header: value | Header: value' for a row's non-empty cells; a first cell under no header (or
    under a unit such as '(in millions)') is the row's label and stands alone."""
    def name(i: int) -> str:
        return header[i] if i < len(header) and header[i] else f"column {i + 1}"

    first = header[0] if header else ""
    return " | ".join(v if i == 0 and (not first or first.startswith("(")) else f"{name(i)}: {v}"
                      for i, v in enumerate(row) if v)


def clean_text(text: str) -> str:
    """PDFium's text with Unix line ends and without the U+0002 it returns for a hyphen that breaks
    a word inside a line ('func\x02tions'), so the word is whole again for search."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x02", "")


def _pdfium_box(textpage, height: float, left, top, right, bottom) -> str:
    text = textpage.get_text_bounded(left=left, bottom=height - bottom, right=right, top=height - top)
    return clean_text(text).strip()


def _text_outside(page, tables: list[PageTable]) -> tuple[list[str], list[str]]:
    """(bands of text around ``tables`` on a pdfplumber page, captions); see `TableReader.read`."""
    def box(left, top, right, bottom) -> str:
        return (page.crop((left, top, right, bottom), strict=False).extract_text() or "").strip()

    return _bands(box, float(page.width), float(page.height), tables)


def _bands(read_box, width: float, height: float, tables: list[PageTable]) -> tuple[list[str], list[str]]:
    """(text bands around ``tables``, captions) with ``read_box(left, top, right, bottom)`` reading
    the text inside a box (points from the page's top-left)."""
    def box(left, top, right, bottom) -> str:
        left, top, right, bottom = max(0.0, left), max(0.0, top), min(width, right), min(height, bottom)
        if right - left < 1 or bottom - top < 1:
            return ""
        return read_box(left, top, right, bottom)

    bands, captions, top = [], [], 0.0
    for t in tables:
        x0, t_top, x1, t_bottom = t.bbox
        above = box(0, top, width, t_top)
        lines = [line.strip() for line in above.split("\n") if line.strip()]
        captions.append(lines[-1] if lines and len(lines[-1]) <= _CAPTION_CHARS else "")
        beside = [box(0, t_top, x0 - 1.5, t_bottom), box(x1 + 1.5, t_top, width, t_bottom)]
        bands.append("\n".join(x for x in (above, *beside) if x))
        top = max(top, t_bottom)
    bands.append(box(0, top, width, height))
    return bands, captions
