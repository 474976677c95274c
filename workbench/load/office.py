"""Word and PowerPoint: python-docx and python-pptx, in reading order.

DOCX: headings (styles 'Title', 'Heading N') form the heading path of the paragraphs and tables
under them; a table becomes one block whose rows read 'Header: value | ...'. PPTX: one page per
slide (slide number), its title as heading, text frames, tables, grouped shapes and speaker notes.
Leaves out: images, charts, comments, tracked changes, headers and footers.
"""

from __future__ import annotations

import io

from workbench.errors import ParseError
from workbench.records import Block, ParsedDocument


def _clean(text: str) -> str:
    return " ".join(text.split())


def table_rows_text(rows: list[list[str]]) -> str:
    """Rows as text; with a header row, each later cell is prefixed by its column name."""
    rows = [[_clean(c) for c in row] for row in rows if any(c.strip() for c in row)]
    if not rows:
        return ""
    header, body = rows[0], rows[1:]
    if not body:
        return " | ".join(header)
    lines = [" | ".join(header)]
    for row in body:
        cells = []
        for i, cell in enumerate(row):
            name = header[i] if i < len(header) else ""
            if cell:
                cells.append(f"{name}: {cell}" if name and name != cell else cell)
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def _docx_table(table) -> str:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:  # merged cells repeat; keep one copy
            text = cell.text
            if not cells or text != cells[-1]:
                cells.append(text)
        rows.append(cells)
    return table_rows_text(rows)


def _heading_level(style_name: str) -> int | None:
    if style_name == "Title":
        return 0
    if style_name.startswith("Heading"):
        tail = style_name.removeprefix("Heading").strip()
        return int(tail) if tail.isdigit() else 1
    return None


def load_docx(data: bytes, stem: str) -> ParsedDocument:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:
        raise ParseError(f"corrupt or unreadable DOCX ({type(exc).__name__}: {exc})") from None
    stack: list[tuple[int, str]] = []
    blocks: list[Block] = []
    for child in document.element.body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        headings = tuple(t for _, t in stack)
        if tag == "p":
            para = Paragraph(child, document)
            text = para.text.strip()
            if not text:
                continue
            level = _heading_level(para.style.name if para.style is not None else "")
            if level is None:
                blocks.append(Block(text=text, headings=headings))
                continue
            stack = [(lvl, t) for lvl, t in stack if lvl < level] + [(level, _clean(text))]
            blocks.append(Block(text=text, headings=tuple(t for _, t in stack), kind="heading"))
        elif tag == "tbl":
            text = _docx_table(Table(child, document))
            if text:
                blocks.append(Block(text=text, headings=headings, kind="table"))
    title = (document.core_properties.title or "").strip() or next(
        (b.text for b in blocks if b.kind == "heading"), stem
    )
    return ParsedDocument(format="docx", title=title, blocks=tuple(blocks))


def _shape_texts(shapes) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for shape in shapes:
        if shape.shape_type == 6 and hasattr(shape, "shapes"):  # group
            out += _shape_texts(shape.shapes)
        elif getattr(shape, "has_table", False) and shape.has_table:
            rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
            out.append(("table", table_rows_text(rows)))
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            text = "\n".join(p.text for p in shape.text_frame.paragraphs if p.text.strip())
            if text.strip():
                out.append(("text", text.strip()))
    return out


def load_pptx(data: bytes, stem: str) -> ParsedDocument:
    from pptx import Presentation

    try:
        prs = Presentation(io.BytesIO(data))
    except Exception as exc:
        raise ParseError(f"corrupt or unreadable PPTX ({type(exc).__name__}: {exc})") from None
    blocks: list[Block] = []
    for number, slide in enumerate(prs.slides, start=1):
        title_shape = slide.shapes.title
        title = _clean(title_shape.text) if title_shape is not None and title_shape.has_text_frame else ""
        headings = (title,) if title else ()
        for kind, text in _shape_texts(slide.shapes):
            blocks.append(Block(text=text, page=number, headings=headings, kind="heading" if text == title else kind))
        if slide.has_notes_slide:
            notes = slide.notes_slide.notes_text_frame.text.strip() if slide.notes_slide.notes_text_frame else ""
            if notes:
                blocks.append(Block(text=f"Notes: {notes}", page=number, headings=headings))
    title = (prs.core_properties.title or "").strip() or next((b.text for b in blocks if b.kind == "heading"), stem)
    return ParsedDocument(format="pptx", title=title, blocks=tuple(blocks))
