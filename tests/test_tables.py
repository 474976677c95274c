"""Tables in PDFs keep their headers: each row is one 'Header: value' line, through the real CLI."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli


def make_table_pdf(path, repeat_header: bool) -> None:
    """A report page: a title, running text, a captioned 40-row ruled table that spills onto page 2
    (with or without its header repeated there), and a closing line."""
    from fpdf import FPDF
    from fpdf.enums import TableHeadingsDisplay

    pdf = FPDF()
    pdf.set_font("helvetica", size=10)
    pdf.add_page()
    pdf.cell(0, 8, "Quarterly results", new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 6, "The board reviewed the regional figures below. Growth was strongest in the north.",
                   new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 8, "Table 4: Results by region", new_x="LMARGIN", new_y="NEXT")
    rows = [("Region", "Revenue", "Margin", "Staff")]
    rows += [(f"Region {i}", f"{1000 + i * 37}", f"{10 + i % 7}.{i % 10}%", str(40 + i)) for i in range(40)]
    display = TableHeadingsDisplay.ON_TOP_OF_EVERY_PAGE if repeat_header else TableHeadingsDisplay.NONE
    with pdf.table(repeat_headings=display) as table:
        for r in rows:
            row = table.row()
            for cell in r:
                row.cell(cell)
    pdf.multi_cell(0, 6, "Figures are unaudited.", new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))


@pytest.mark.parametrize("repeat_header", [True, False], ids=["header-repeated", "header-not-repeated"])
def test_a_table_row_is_found_with_its_headers_on_both_pages(tmp_path, repeat_header):
    src = tmp_path / "docs"
    src.mkdir()
    make_table_pdf(src / "results.pdf", repeat_header)
    index = str(tmp_path / "ix")
    out = run_cli("ingest", str(src), "--index", index, "--json")
    assert out.returncode == 0, out.stderr
    for region, revenue, margin, page in (("Region 3", "1111", "13.3%", 1), ("Region 37", "2369", "12.7%", 2)):
        hits = json.loads(run_cli("search", f"What margin did {region} have?", "--index", index, "-k", "3",
                                  "--json", "--mode", "lexical").stdout)
        row = f"Region: {region} | Revenue: {revenue} | Margin: {margin}"
        top = hits[0]
        assert row in top["text"], top  # the cell with its column header, in the row's own passage
        assert top["page"] == page
        caption = "Table 4: Results by region" + (" (continued)" if page == 2 else "")
        assert top["headings"][-1] == caption
    # the running text is indexed once, outside the table's passages
    hits = json.loads(run_cli("search", "board reviewed regional figures", "--index", index, "-k", "20",
                              "--json", "--mode", "lexical").stdout)
    holding = [h for h in hits if "The board reviewed" in h["text"]]
    assert len(holding) == 1 and "Margin:" not in holding[0]["text"]
    every_text = " ".join(h["text"] for h in json.loads(run_cli(
        "search", "Region", "--index", index, "-k", "50", "--json", "--mode", "lexical").stdout))
    assert every_text.count("Region: Region 37 |") == 1  # one row, once
    assert "Region | Revenue | Margin | Staff\nRegion: Region 0" in every_text or "Region: Region 0" in every_text


def test_tables_off_leaves_the_page_text_as_it_was(tmp_path):
    from workbench.load import LoadLimits
    from workbench.load.pdf import load_pdf

    path = tmp_path / "results.pdf"
    make_table_pdf(path, repeat_header=True)
    on = load_pdf(path.read_bytes(), "results", LoadLimits())
    off = load_pdf(path.read_bytes(), "results", LoadLimits(pdf_tables=False))
    assert on.metadata["tables"] == "2" and "tables" not in off.metadata
    assert "Region: Region 5 | Revenue: 1185" in on.text
    assert "Region: Region 5" not in off.text and "Region 5 1185" in off.text
    assert [b.page for b in off.blocks] == [1, 2]
