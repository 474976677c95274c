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


def make_statement_pdf(path) -> None:
    """A statement of operations as annual reports set it: no rules, a units-and-years header line,
    labels on the left, figures flush right, prose above and below."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=10)
    pdf.add_page()
    pdf.multi_cell(0, 6, "Consolidated statement of operations. The following table sets out our results "
                   "for the two years.", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    labels = ["Revenue", "Cost of sales", "Gross profit", "Research and development", "Selling and marketing",
              "General and administrative", "Operating income", "Interest expense", "Income before taxes",
              "Income taxes", "Net income"]
    rows = [("(in millions)", "2021", "2020", "Change")]
    rows += [(name, f"{1000 + i * 137:,}", f"{900 + i * 91:,}", f"{(i * 3) % 17}%") for i, name in enumerate(labels)]
    for r in rows:
        pdf.cell(80, 7, r[0])
        for cell in r[1:]:
            pdf.cell(30, 7, cell, align="R")
        pdf.ln(7)
    pdf.ln(4)
    pdf.multi_cell(0, 6, "Operating margin improved because of lower marketing costs in every region.",
                   new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))


def test_a_statement_without_rules_keeps_its_years_on_every_figure(tmp_path):
    src = tmp_path / "docs"
    src.mkdir()
    make_statement_pdf(src / "statement.pdf")
    index = str(tmp_path / "ix")
    assert run_cli("ingest", str(src), "--index", index).returncode == 0
    hits = json.loads(run_cli("search", "What was net income in 2020?", "--index", index, "-k", "3", "--json",
                              "--mode", "lexical").stdout)
    assert "Net income | 2021: 2,370 | 2020: 1,810 | Change: 13%" in hits[0]["text"], hits[0]
    assert hits[0]["headings"][-1].startswith("Consolidated statement of operations")
    prose = [h for h in json.loads(run_cli("search", "operating margin improved marketing costs", "--index", index,
                                           "-k", "10", "--json", "--mode", "lexical").stdout)
             if "lower marketing costs" in h["text"]]
    assert len(prose) == 1 and "2021:" not in prose[0]["text"]  # the prose is indexed once, as prose


def test_prose_with_numbers_and_index_pages_are_not_tables(tmp_path):
    from workbench.load.pdf import load_pdf

    from conftest import make_pdf

    path = make_pdf(tmp_path / "prose.pdf", [
        "Release 2.9.20 was published on October 3, 2006.\nIt fixes 12 bugs and 3 crashes.\n"
        "Version 2.9.19 had 40 open issues in 7 modules.\nWe plan 2 releases in 2007 and 1 in 2008.\n"
        "cbind . . . . . . . 26, 30\nmatrix . . . . . . . 12, 19\nlist . . . . . . . 8, 11\nseq . . . . . . . 4, 9"])
    doc = load_pdf(path.read_bytes(), "prose")
    assert "tables" not in doc.metadata and all(b.kind == "text" for b in doc.blocks)
