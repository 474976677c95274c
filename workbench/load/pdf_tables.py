"""Tables of a PDF page as rows that keep their column headers.

Two kinds. **Ruled tables**: a page is a candidate when the bounds of its drawn paths (PDFium) could
be a grid (`is_candidate`); on candidates, the edges of those paths go through pdfplumber's lattice
algorithm (snap and join the edges, their crossings, the smallest cells, cells into tables:
`ruled_tables`), and each cell's text is read by PDFium. A found table is kept when half its cells
hold text that is mostly letters and digits. (pdfplumber's own page parsing, through pdfminer.six,
cost 0.3-0.7 s a page on financial filings, where nearly every page is a candidate: 29x the page's
text extraction.) **Tables of figures without rules** (financial statements): a page whose text has
4 or more rows "label, then figures only" (`has_figures`) has its words' positions read (PDFium's
character boxes); figures flush right in one place on half the rows make a column (`_aligned`), and
the line above, or a first line of years and words, names the columns.

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


def path_bounds(page) -> list[tuple[float, float, float, float]]:
    """(left, bottom, right, top) of each drawn path of a PDFium page, in PDF points, also inside
    form objects one level down. Read with PDFium's C calls: pypdfium2's object iterator wraps every
    object of the page, text included (thousands a page in a filing), which cost more than the rest
    of the table search."""
    import ctypes

    import pypdfium2.raw as c

    box = [ctypes.c_float() for _ in range(4)]
    out = []

    refs = [ctypes.byref(v) for v in box]
    path_kind, form_kind, get_type, get_bounds = c.FPDF_PAGEOBJ_PATH, c.FPDF_PAGEOBJ_FORM, c.FPDFPageObj_GetType, c.FPDFPageObj_GetBounds

    def add(obj) -> None:
        if get_bounds(obj, *refs):
            out.append((box[0].value, box[1].value, box[2].value, box[3].value))

    def visit(objects) -> None:
        for obj in objects:
            kind = get_type(obj)
            if kind == path_kind:
                add(obj)
            elif kind == form_kind:
                inner = [c.FPDFFormObj_GetObject(obj, j) for j in range(c.FPDFFormObj_CountObjects(obj))]
                for o in inner:  # one level down only
                    if get_type(o) == path_kind:
                        add(o)

    raw = page.raw
    get = c.FPDFPage_GetObject
    visit(get(raw, i) for i in range(c.FPDFPage_CountObjects(raw)))
    return out


def _path_edges(bounds, height: float) -> list[dict]:
    """The edges of a page's drawn paths (``bounds``: `path_bounds`) as pdfplumber describes a
    rectangle's: each path's four sides (a rule's two long sides snap together later), in points
    from the page's top-left."""
    edges = []
    for left, bottom, right, top in bounds:
        y0, y1 = height - top, height - bottom
        for x0, x1, t, b in ((left, right, y0, y0), (left, right, y1, y1), (left, left, y0, y1), (right, right, y0, y1)):
            h = x0 == x1
            edges.append({"x0": x0, "x1": x1, "top": t, "bottom": b, "width": x1 - x0, "height": b - t,
                          "orientation": "v" if h else "h", "object_type": "rect"})
    return edges


def _inside(words: list[dict], cell) -> str:
    """The words whose centre lies in ``cell`` (x0, top, x1, bottom), line by line, as pdfplumber
    assigns characters to cells."""
    x0, top, x1, bottom = cell
    found = [w for w in words if x0 <= (w["x0"] + w["x1"]) / 2 <= x1 and top <= (w["top"] + w["bottom"]) / 2 <= bottom]
    return " ".join(w["text"] for line in _lines(found) for w in line)


def ruled_tables(bounds, words: list[dict], height: float) -> list[tuple[tuple, list[tuple[str, ...]]]]:
    """Ruled tables of a page (its `path_bounds`, its `pdfium_words`), top to bottom: (bbox, rows of
    cell texts) each, found by pdfplumber's lattice algorithm (its default tolerances) on the page's
    path edges. Rows that are empty are left out."""
    from pdfplumber import utils
    from pdfplumber.table import Table, cells_to_tables, edges_to_intersections, intersections_to_cells, merge_edges

    edges = utils.filter_edges(_path_edges(bounds, height), min_length=1)
    edges = merge_edges(edges, snap_x_tolerance=3, snap_y_tolerance=3, join_x_tolerance=3, join_y_tolerance=3)
    edges = utils.filter_edges(edges, min_length=3)
    cells = intersections_to_cells(edges_to_intersections(edges, 3, 3))
    out = []
    for group in cells_to_tables(cells):
        table = Table(None, group)
        mine = [w for w in words if table.bbox[1] - 1 <= (w["top"] + w["bottom"]) / 2 <= table.bbox[3] + 1]
        rows = [tuple(_clean(_inside(mine, cell)) if cell else "" for cell in row.cells) for row in table.rows]
        rows = [r for r in rows if any(r)]
        if rows:
            out.append((tuple(table.bbox), rows))
    return sorted(out, key=lambda t: t[0][1])


def is_candidate(bounds) -> bool:
    """Whether a page's drawn paths (``bounds``: `path_bounds`) could be a ruled table (cheap: no
    text): at least 3 horizontal edges (rules, or the tops and bottoms of boxes) whose median
    spacing is a text row or more (9 pt: music staves, 5 lines a few points apart, are not tables),
    and at least 3 vertical edges at distinct x (two columns)."""
    ys: set[int] = set()
    xs: set[int] = set()
    for left, bottom, right, top in bounds:
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
_CURRENCY = {"$", "€", "£", "¥"}  # set apart from its figure in statements
_CLOSERS = {")", "%", ")%", "%)"}  # ... and these after it


def has_figures(text: str) -> bool:
    """Whether a page's extracted text has 4 or more lines that read like rows of a table of figures
    (`_figure_row`: 'Revenue 1,250 1,100 13.6%').
    Only such pages (about 5% of the page benchmark's manuals) have their words' positions read."""
    n = 0
    for line in text.split("\n"):
        tokens = [w["text"] for w in _joined([{"text": t} for t in line.split()])]  # '$ 5,472', '(9 )'
        if _figure_row(tokens):
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
_PERIOD = re.compile(r"(?<!\d)(?:19|20)\d{2}(?!\d)")  # a year inside a column name ('June 25, 2022')


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




def _joined(line: list[dict]) -> list[dict]:
    """A line's words with statement typesetting undone: a currency sign standing alone is dropped
    ('$ 5,472' reads '5,472'), and a ')' or '%' set apart (by 8 pt or less, when the words have
    boxes) is joined to the figure before it ('(9 )' reads '(9)')."""
    out: list[dict] = []
    for w in line:
        if w["text"] in _CURRENCY:
            continue
        if w["text"] in _CLOSERS and out and ("x0" not in w or w["x0"] - out[-1]["x1"] <= 8):
            out[-1] = {**out[-1], "text": out[-1]["text"] + w["text"], **({"x1": w["x1"]} if "x1" in w else {})}
            continue
        out.append(w)
    return out


def _phrases(line: list[dict]) -> list[tuple[float, float, str]]:
    """A line's words grouped into phrases (gaps under 5 pt): (left, right, text) each."""
    out: list[list] = []
    for w in line:
        if out and w["x0"] - out[-1][1] < 5:
            out[-1][1], out[-1][2] = w["x1"], out[-1][2] + " " + w["text"]
        else:
            out.append([w["x0"], w["x1"], w["text"]])
    return [tuple(p) for p in out]


def _period_header(lines: list[list[dict]], first: int, columns, height: float) -> tuple[tuple[str, ...], int]:
    """The column names stacked in the lines just above line ``first`` ('Three Months Ended' over
    two columns, 'June 25,' over each, '2022' over each) and the index of its top line; ((), first)
    when there is none. Only words over the figure columns count (a units line may share the line
    on its left); every phrase must sit within three quarters of the column spacing of a column,
    and each column takes the nearest. A label alone just above the rows ('Assets') is passed over."""
    centers = [(left + right) / 2 for left, right in columns]
    spacing = statistics.median(b - a for a, b in zip(centers, centers[1:])) if len(centers) > 1 else 60.0
    reach = 0.75 * spacing
    parts: list[list[str]] = [[] for _ in columns]
    top, below = first, lines[first][0]["top"]
    for i in range(first - 1, max(-1, first - 8), -1):
        line = lines[i]
        if below - line[0]["top"] > 2.5 * height:
            break
        whole = _phrases(line)
        if any(p[1] >= columns[0][0] - 30 and p[0] < columns[0][0] - 60 for p in whole):
            break  # a line running from the labels into the columns: a title or units, not column names
        over = [w for w in line if w["x1"] >= columns[0][0] - 30]
        if not over:
            if top == first and len(line) <= 4:
                below = line[0]["top"]
                continue
            break
        phrases = _phrases(over)
        if any(min(abs((p[0] + p[1]) / 2 - c) for c in centers) > reach or p[1] - p[0] > 1.6 * spacing
               for p in phrases):
            break  # a centred title, not column names
        spans = len(phrases) < len(columns)  # 'Three Months Ended' over two columns: each takes the nearest
        for part, c in zip(parts, centers):
            best = min(phrases, key=lambda p: abs((p[0] + p[1]) / 2 - c))
            if abs((best[0] + best[1]) / 2 - c) <= (spacing if spans else reach):
                part.insert(0, best[2])
        top, below = i, line[0]["top"]
    if top == first or not all(parts):
        return (), first
    return ("", *(" ".join(p) for p in parts)), top


def _statement_title(lines: list[list[dict]], top: int, height: float) -> str:
    """Up to three short lines just above a table's header (a statement's name and its units:
    'CONSOLIDATED STATEMENTS OF OPERATIONS (in millions, except per share data)'), in reading order."""
    out, below = [], lines[top][0]["top"]
    for i in range(top - 1, max(-1, top - 4), -1):
        text = " ".join(w["text"] for w in lines[i])
        if below - lines[i][0]["top"] > 3 * height or len(text) > _CAPTION_CHARS or _figure_row(text.split()):
            break
        out.insert(0, text)
        below = lines[i][0]["top"]
    return " ".join(out)


def _sections(rows: list[tuple[tuple[str, ...], float]]) -> list[tuple[str, ...]]:
    """Rows with a section's name in their labels: a line with a label and no figures ('Operating
    expenses:') names the rows indented under it ('Operating expenses: Research and development');
    one with no rows under it is the first line of the next row's label (a label set on two lines).
    A row whose label starts with 'Total' closes its section."""
    out: list[tuple[str, ...]] = []
    section, indent, pending = "", 0.0, ""
    for cells, x0 in rows:
        label, values = cells[0], cells[1:]
        if label and not any(values):
            if pending:
                label = f"{pending} {label}"
            pending, indent = label, x0
            section = ""
            continue
        if pending:
            if x0 > indent + 2:
                section = pending
            else:
                label = f"{pending} {label}"
            pending = ""
        elif section and x0 <= indent + 2:
            section = ""
        if section and label:
            label, ends = f"{section.rstrip(':')}: {label}", label.lower().startswith("total")
            if ends:  # 'Total cost of sales' closes its section
                section = ""
        out.append((label, *values))
    return out


def _aligned(words: list[dict], avoid: list[tuple]) -> list[tuple[tuple, tuple[str, ...], list[tuple[str, ...]], str]]:
    """Tables of figures without rules among a page's ``words``: (bbox, header, rows, title) each. A
    run of 4 or more lines with 2 or more figures each (a label line or two between them allowed),
    whose figures stand in 1 or more columns. The columns are named by the lines stacked above the
    run (`_period_header`: 'Three Months Ended June 25, 2022'), else by a first line of years and
    words, else by the line just above when its words sit over them; the short lines above that
    are the title. Each row is (label, figure per column), a section's name in its label."""
    def outside(w) -> bool:
        return not any(b[0] - 1 <= w["x0"] and w["x1"] <= b[2] + 1 and b[1] - 1 <= w["top"] and w["bottom"] <= b[3] + 1
                       for b in avoid)

    words = [w for w in words if outside(w)]
    if not words:
        return []
    height = statistics.median(w["bottom"] - w["top"] for w in words) or 10
    lines = [line for line in (_joined(line) for line in _lines(words)) if line]
    figures = [i for i, line in enumerate(lines) if _figure_row([w["text"] for w in line])]
    runs: list[list[int]] = []
    for i in figures:
        last = runs[-1][-1] if runs else -9
        if i - last <= 3 and lines[i][0]["top"] - lines[last][0]["top"] <= (2.2 * (i - last) + 1) * height:
            runs[-1].append(i)
        else:
            runs.append([i])
    out = []
    for run in runs:
        if len(run) < _MIN_FIGURE_LINES:
            continue
        columns = _columns([lines[i] for i in run])
        if not columns or (len(columns) == 1 and len(run) < 5):
            continue
        first_left = columns[0][0]
        start = run[0]
        if start > 0 and lines[start - 1][-1]["text"].endswith(":") and all(w["x1"] < first_left - 2 for w in lines[start - 1]) \
                and lines[start][0]["top"] - lines[start - 1][0]["top"] <= 2.5 * height:
            start -= 1  # the section name over the first rows ('Net sales:')
        span = lines[start:run[-1] + 1]

        def cells(line: list[dict]) -> tuple[str, ...]:
            label = " ".join(w["text"] for w in line if w["x1"] < first_left - 2)
            values = []
            for left, right in columns:
                inside = [w["text"] for w in line if w["x1"] >= first_left - 2
                          and left - 4 <= (w["x0"] + w["x1"]) / 2 <= right + 4]
                values.append(" ".join(inside))
            return (label, *values)

        rows = [(cells(line), line[0]["x0"]) for line in span]
        top = span[0][0]["top"]
        header, head_top = _period_header(lines, start, columns, height)
        title = ""
        if header:
            top = lines[head_top][0]["top"]
            title = _statement_title(lines, head_top, height)
            rows = [(c, x) for c, x in rows if any(c)]
        elif _names_columns(rows[0][0]):  # '(in millions)  2021  2020  Change': years and words over the figures
            header, rows = rows[0][0], rows[1:]
        else:
            above = run[0] - 1
            if above >= 0 and top - lines[above][0]["top"] <= 2.5 * height:
                candidate = cells(lines[above])
                if sum(1 for c in candidate[1:] if c) >= max(1, len(columns) // 2) and not candidate[0].endswith("."):
                    header, top = candidate, lines[above][0]["top"]
        if len(rows) < 3 or sum(1 for r, _ in rows if r[0]) < len(rows) / 2:  # no labels: a listing, not a table
            continue
        bbox = (min(w["x0"] for line in span for w in line), top - 1,
                max(w["x1"] for line in span for w in line), span[-1][0]["bottom"] + 1)
        out.append((bbox, header, _sections(rows), title))
    return out


def _names_header(rows: list[tuple[str, ...]]) -> bool:
    """Whether a ruled table's first row after its title rows names columns: 2 or more filled
    cells, at most one of them a figure."""
    for row in rows:
        filled = [c for c in row if c]
        if len(filled) >= 2:
            return sum(1 for c in filled if _NUMBER.match(c)) <= 1
    return False


def _within(path: tuple, box: tuple, height: float) -> bool:
    """Whether a path's bounds (left, bottom, right, top in PDF points) lie inside ``box`` (x0, top, x1,
    bottom from the page's top-left), within 3 pt."""
    left, bottom, right, top = path
    return box[0] - 3 <= left and right <= box[2] + 3 and box[1] - 3 <= height - top and height - bottom <= box[3] + 3


def _overlap(a: tuple, b: tuple) -> bool:
    """Whether boxes (x0, top, x1, bottom) ``a`` and ``b`` share area."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _clean(cell) -> str:
    return " ".join(str(cell).split()) if cell is not None else ""


class TableReader:
    """Finds the tables of one PDF page by page (remembering the last one, for tables continued on
    the next page)."""

    def __init__(self) -> None:
        self._last: PageTable | None = None  # the table that ended the previous page read
        self._last_page = -1
        self._last_caption = ""  # the caption of the table that ended the previous page

    def read(self, index: int, page, textpage, bounds=None, figures: bool = False
             ) -> tuple[list[PageTable], list[str], list[str]]:
        """The tables of 0-based page ``index`` (a PDFium page and its text page) top to bottom: the
        ruled ones (given its ``bounds``, `path_bounds`) and those of figures (``figures``); the page's text around them (one
        band per gap: before the first table, between tables, after the last; text beside a table
        joins the band above it) and each table's caption (the last short line just above it, or "").
        No tables: ([], [], [])."""
        width, height = page.get_size()
        words = pdfium_words(textpage, height)
        first = None  # the rows of figures found before the ruled tables, when they were looked for
        if bounds and figures:  # a statement's shading and underlines inside its rows of figures are not a grid:
            # leaving them out spares the lattice search most of its work. A statement: columns named by periods
            first = _aligned(words, [])
            boxes = [f[0] for f in first if sum(1 for h in f[1][1:] if _PERIOD.search(h)) * 2 >= len(f[1]) - 1 > 0]
            bounds = [p for p in bounds if not any(_within(p, b, height) for b in boxes)]
        ruled = [(bbox, rows) for bbox, rows in (ruled_tables(bounds, words, height) if bounds else ())
                 if _looks_like_table(rows)]
        top = min((bbox[1] for bbox, _ in ruled), default=0.0)
        named = [bbox for bbox, rows in ruled if _names_header(rows)  # or continues the last page's table
                 or self._continued_from(bbox, len(rows[0]), index, height, bbox[1] == top) is not None]
        # rows of figures outside the ruled tables that name their columns; a ruled table whose first
        # row is figures (a statement's underlines and shading cut into cells) gives way to them
        figs = (first if first is not None and not named else _aligned(words, named)) if figures else []
        ruled = [(bbox, rows) for bbox, rows in ruled if bbox in named or not any(_overlap(bbox, f[0]) for f in figs)]
        found = []
        for bbox, item in sorted([(b, r) for b, r in ruled] + [(f[0], f) for f in figs], key=lambda t: t[0][1]):
            if isinstance(item, list):
                found.append(self._with_header(bbox, item, index, height, not found))
            else:
                _, header, rows, title = item
                found.append(PageTable(bbox, header, tuple(rows), title=title) if header else
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
