"""Spreadsheets: XLSX with openpyxl (read-only, cached values), CSV/TSV with the csv module.

Each data row becomes one block that keeps the row whole and names its columns
('Region: West | Office: Denver | Headcount: 42'), so a chunk never separates a value from its
header. The first non-empty row of a sheet is taken as the header. Leaves out formulas (their
cached values are read), charts, formatting and hidden-sheet semantics.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from workbench.errors import ParseError
from workbench.records import Block, ParsedDocument


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return " ".join(str(value).split())


def rows_to_blocks(rows: Iterable[Iterable], sheet: str | None) -> list[Block]:
    """Header-named row blocks from raw rows; empty rows are skipped."""
    header: list[str] | None = None
    blocks: list[Block] = []
    headings: tuple[str, ...] = ()  # the sheet name is carried by `sheet`
    for number, raw in enumerate(rows, start=1):
        row = [_cell(v) for v in raw]
        if not any(row):
            continue
        if header is None:
            header = [h or f"column {i + 1}" for i, h in enumerate(row)]
            blocks.append(Block(text=" | ".join(header), sheet=sheet, headings=headings, kind="heading"))
            continue
        cells = [
            f"{header[i] if i < len(header) else f'column {i + 1}'}: {v}" for i, v in enumerate(row) if v
        ]
        blocks.append(Block(text=f"Row {number}: " + " | ".join(cells), sheet=sheet, headings=headings, kind="row"))
    return blocks


def load_xlsx(data: bytes, stem: str) -> ParsedDocument:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:
        raise ParseError(f"corrupt or unreadable XLSX ({type(exc).__name__}: {exc})") from None
    blocks: list[Block] = []
    try:
        for ws in wb.worksheets:
            blocks += rows_to_blocks(ws.iter_rows(values_only=True), ws.title)
        title = (wb.properties.title or "").strip() or stem
    finally:
        wb.close()
    return ParsedDocument(format="xlsx", title=title, blocks=tuple(blocks))


def load_csv(data: bytes, stem: str) -> ParsedDocument:
    from workbench.load.text import decode_text

    text = decode_text(data)
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.reader(io.StringIO(text), dialect))
    except csv.Error as exc:
        raise ParseError(f"malformed CSV ({exc})") from None
    return ParsedDocument(format="csv", title=stem, blocks=tuple(rows_to_blocks(rows, None)))
