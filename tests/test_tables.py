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
    stages = json.loads(out.stdout)["stage_seconds"]  # a local ingest says where its time went
    assert {"plan", "parse", "chunk", "embed", "write", "publish", "tables"} <= set(stages), stages
    assert 0 < stages["tables"] <= stages["parse"] and stages["embed"] > 0
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


def make_filing_pdf(path) -> None:
    """A statement as quarterly filings set it: a centred title and units line, periods stacked over
    the columns ('Three Months Ended' over two, then the dates, then the years), '$' set apart from
    its figure, a closing parenthesis set apart, section names over indented rows, and the
    statement continued on the next page under the same header."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=9)
    cols = (110, 135, 160, 185)  # right edges of the figure columns

    def header() -> None:
        pdf.cell(0, 5, "CONDENSED CONSOLIDATED STATEMENTS OF OPERATIONS (Unaudited)", align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.cell(0, 5, "(In millions, except per share amounts)", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        y = pdf.get_y()
        for text, left, right in (("Three Months Ended", cols[0] - 22, cols[1]), ("Nine Months Ended", cols[2] - 22, cols[3])):
            pdf.set_xy(left, y)
            pdf.cell(right - left, 5, text, align="C")
        for line in (("June 25,", "June 26,", "June 25,", "June 26,"), ("2022", "2021", "2022", "2021")):
            y += 5
            for right, text in zip(cols, line):
                pdf.set_xy(right - 22, y)
                pdf.cell(22, 5, text, align="R")
        pdf.set_xy(pdf.l_margin, y + 7)

    def row(label: str, figures=(), indent: float = 0, dollar: bool = False) -> None:
        y = pdf.get_y()
        pdf.set_x(pdf.l_margin + indent)
        pdf.cell(60, 5, label)
        for right, figure in zip(cols, figures):
            if dollar:
                pdf.set_xy(right - 22, y)
                pdf.cell(4, 5, "$")
            closing = figure.endswith(")")
            pdf.set_xy(right - 18, y)
            pdf.cell(18 - (2 if closing else 0), 5, figure[:-1] if closing else figure, align="R")
            if closing:
                pdf.set_xy(right - 1.5, y)
                pdf.cell(2, 5, ")")
        pdf.set_xy(pdf.l_margin, y + 5)

    pdf.add_page()
    header()
    row("Net sales:")
    row("Products", ("63,355", "63,948", "245,241", "232,309"), 4, dollar=True)
    row("Services", ("19,604", "17,486", "58,941", "50,148"), 4)
    row("Total net sales", ("82,959", "81,434", "304,182", "282,457"), 8)
    row("Operating expenses:")
    row("Research and development", ("6,797", "5,717", "19,490", "16,142"), 4)
    row("Selling, general and administrative", ("6,012", "5,412", "18,654", "16,357"), 4)
    row("Total operating expenses", ("12,809", "11,129", "38,144", "32,499"), 8)
    row("Other income/(expense), net", ("(10)", "243", "(97)", "796"))
    pdf.add_page()
    header()
    row("Provision for income taxes", ("3,624", "2,625", "15,364", "11,830"))
    row("Net income", ("19,442", "21,744", "79,082", "74,129"), dollar=True)
    row("Earnings per share:")
    row("Basic", ("1.20", "1.31", "4.86", "4.42"), 4, dollar=True)
    row("Diluted", ("1.20", "1.30", "4.82", "4.38"), 4, dollar=True)
    pdf.output(str(path))


def test_a_filings_statement_reads_as_rows_under_its_periods_on_both_pages():
    import tempfile
    from pathlib import Path

    from workbench.load import LoadLimits
    from workbench.load.pdf import load_pdf

    with tempfile.TemporaryDirectory() as tmp:
        make_filing_pdf(Path(tmp) / "q3.pdf")
        doc = load_pdf((Path(tmp) / "q3.pdf").read_bytes(), "q3", LoadLimits(pdf_tables=True))
    rows = {b.text: b for b in doc.blocks if b.kind == "row"}
    want = [
        ("Net sales: Products | Three Months Ended June 25, 2022: 63,355 | Three Months Ended June 26, 2021: 63,948 | "
         "Nine Months Ended June 25, 2022: 245,241 | Nine Months Ended June 26, 2021: 232,309", 1),
        ("Operating expenses: Research and development | Three Months Ended June 25, 2022: 6,797", 1),
        ("Other income/(expense), net | Three Months Ended June 25, 2022: (10) | Three Months Ended June 26, 2021: 243 | "
         "Nine Months Ended June 25, 2022: (97)", 1),
        ("Net income | Three Months Ended June 25, 2022: 19,442", 2),
        ("Earnings per share: Diluted | Three Months Ended June 25, 2022: 1.20 | Three Months Ended June 26, 2021: 1.30", 2),
    ]
    for text, page in want:
        found = [b for t, b in rows.items() if t.startswith(text)]
        assert found, f"{text!r} not among {list(rows)}"
        assert found[0].page == page
        assert "STATEMENTS OF OPERATIONS" in found[0].headings[-1] and "In millions" in found[0].headings[-1]
    assert not any("Operating expenses: Other income" in t for t in rows)  # a row back at the margin ends the section


def test_prose_with_numbers_and_index_pages_are_not_tables(tmp_path):
    from workbench.load.pdf import load_pdf

    from conftest import make_pdf

    path = make_pdf(tmp_path / "prose.pdf", [
        "Release 2.9.20 was published on October 3, 2006.\nIt fixes 12 bugs and 3 crashes.\n"
        "Version 2.9.19 had 40 open issues in 7 modules.\nWe plan 2 releases in 2007 and 1 in 2008.\n"
        "cbind . . . . . . . 26, 30\nmatrix . . . . . . . 12, 19\nlist . . . . . . . 8, 11\nseq . . . . . . . 4, 9"])
    doc = load_pdf(path.read_bytes(), "prose")
    assert "tables" not in doc.metadata and all(b.kind == "text" for b in doc.blocks)
