"""Each loader on real files made here: text, structure (pages, slides, sheets, headings), errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import encrypt_pdf, make_docx, make_eml, make_pdf, make_pptx, make_xlsx, make_zip_bomb

from workbench.errors import ParseError
from workbench.load import LoadLimits, parse_bytes


def parse(path: Path, name: str | None = None, **limits):
    return parse_bytes(path.read_bytes(), name or path.name, LoadLimits(**limits))


def test_pdf_pages_and_outline_headings(tmp_path):
    pdf = make_pdf(tmp_path / "m.pdf", ["Alpha page text.", "Bravo page text.", "Charlie page text."],
                   outline=["Intro", "Middle", "End"])
    [doc] = parse(pdf)
    assert doc.format == "pdf"
    assert [b.page for b in doc.blocks] == [1, 2, 3]
    assert "Bravo" in doc.blocks[1].text
    assert doc.blocks[2].headings == ("End",)


def test_pdf_encrypted_with_empty_user_password_opens(tmp_path):
    plain = make_pdf(tmp_path / "p.pdf", ["Quarterly filing text about revenue."])
    enc = encrypt_pdf(plain, tmp_path / "enc.pdf", user_password="")
    assert b"/Encrypt" in enc.read_bytes()
    [doc] = parse(enc)
    assert "revenue" in doc.text


def test_pdf_with_password_is_refused_with_reason(tmp_path):
    plain = make_pdf(tmp_path / "p.pdf", ["Secret text."])
    enc = encrypt_pdf(plain, tmp_path / "locked.pdf", user_password="hunter2")
    with pytest.raises(ParseError, match="password-protected PDF"):
        parse(enc)


def test_corrupt_pdf_is_refused(tmp_path):
    good = make_pdf(tmp_path / "p.pdf", ["Some text."]).read_bytes()
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(good[:200])
    with pytest.raises(ParseError, match="corrupt or unreadable PDF"):
        parse(bad)


def test_docx_headings_paragraphs_and_table(tmp_path):
    [doc] = parse(make_docx(tmp_path / "f.docx"))
    texts = [b.text for b in doc.blocks]
    assert "The PW127 engine is inspected every 400 flight hours." in texts
    para = next(b for b in doc.blocks if b.text.startswith("Borescope images"))
    assert para.headings == ("Fleet Manual", "Engines", "Borescope")
    table = next(b for b in doc.blocks if b.kind == "table")
    assert "Part: Gearbox | Interval: 1200 h" in table.text
    assert doc.title == "Fleet Manual"


def test_pptx_slides_titles_and_notes(tmp_path):
    [doc] = parse(make_pptx(tmp_path / "d.pptx"))
    budget = [b for b in doc.blocks if b.page == 2]
    assert any("4.2 million" in b.text for b in budget)
    assert any(b.text == "Notes: Mention the reserve" for b in budget)
    assert all(b.headings == ("Budget",) for b in budget)


def test_xlsx_rows_keep_their_header_names(tmp_path):
    [doc] = parse(make_xlsx(tmp_path / "s.xlsx"))
    rows = [b for b in doc.blocks if b.kind == "row"]
    assert rows[1].text == "Row 3: Station: Hamburg | Code: HAM | Technicians: 45"
    assert rows[1].sheet == "Stations"


def test_csv_rows_and_delimiter_sniffing(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("name;phone\nService desk;4400\nSecurity;4420\n")
    [doc] = parse(p)
    assert [b.text for b in doc.blocks if b.kind == "row"] == ["Row 2: name: Service desk | phone: 4400",
                                                                "Row 3: name: Security | phone: 4420"]


def test_html_main_text_and_headings_without_scripts_or_nav(tmp_path):
    p = tmp_path / "p.html"
    p.write_text("<html><head><title>T</title><script>var secret=1;</script></head><body>"
                 "<nav>Home | About</nav><main><h1>Guide</h1><h2>Part A</h2><p>Alpha <b>bold</b> text.</p>"
                 "<table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table></main>"
                 "<footer>(c) corp</footer></body></html>")
    [doc] = parse(p)
    assert "secret" not in doc.text
    assert "Home" not in doc.text
    assert "(c) corp" not in doc.text
    para = next(b for b in doc.blocks if "Alpha" in b.text)
    assert para.text == "Alpha bold text."
    assert para.headings == ("Guide", "Part A")
    assert doc.title == "T"


def test_html_nested_ten_thousand_levels_does_not_recurse(tmp_path):
    p = tmp_path / "deep.html"
    p.write_text("<html><body>" + "<div>" * 10000 + "deep text" + "</div>" * 10000 + "<p>after</p></body></html>")
    [doc] = parse(p)
    assert "after" in doc.text


def test_markdown_heading_hierarchy(tmp_path):
    p = tmp_path / "g.md"
    p.write_text("# Top\n\nIntro.\n\n## Sub\n\nBody text.\n\n### Deeper\n\n- item one\n- item two\n\n## Other\n\nEnd.\n")
    [doc] = parse(p)
    by_text = {b.text: b for b in doc.blocks}
    assert by_text["Body text."].headings == ("Top", "Sub")
    assert by_text["- item one\n- item two"].headings == ("Top", "Sub", "Deeper")
    assert by_text["End."].headings == ("Top", "Other")


def test_text_in_latin1_is_decoded(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes("Résumé of the café meeting.\n\nSecond paragraph.".encode("latin-1"))
    [doc] = parse(p)
    assert "Résumé" in doc.text
    assert len(doc.blocks) == 2


def test_email_body_and_attachment_as_own_document(tmp_path):
    p = make_eml(tmp_path / "m.eml", {"plan.txt": b"Resurfacing plan: phase one starts at 22:00."})
    mail, att = parse(p)
    assert mail.format == "email"
    assert mail.title == "Runway closure"
    assert "Runway 32L closes" in mail.text
    assert "From: ops@example.org" in mail.text
    assert att.part == "plan.txt"
    assert "phase one" in att.text


def test_email_attachments_with_one_name_and_a_forwarded_email_all_get_their_own_part(tmp_path, make_wb):
    """A hostile e-mail (attachments named a, 2-a, a; an attached e-mail with attachments) once gave
    two documents one part name, and the catalog's unique (path, part) then aborted every ingest."""
    from email.message import EmailMessage

    inner = EmailMessage()
    inner["Subject"] = "Forwarded"
    inner.set_content("The forwarded body.")
    for name in ("x.txt", "x.txt"):
        inner.add_attachment(b"Inner attachment text.", maintype="application", subtype="octet-stream", filename=name)
    outer = EmailMessage()
    outer["Subject"] = "Outer"
    outer.set_content("The outer body.")
    for name, data in (("a.txt", b"First a."), ("2-a.txt", b"Second."), ("a.txt", b"Third a."),
                       ("fwd.eml", bytes(inner))):
        outer.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    (tmp_path / "docs").mkdir()
    path = tmp_path / "docs" / "m.eml"
    path.write_bytes(bytes(outer))
    parts = [d.part for d in parse(path)]
    assert parts == ["", "a.txt", "2-a.txt", "a (2).txt", "fwd.eml", "fwd.eml » x.txt", "fwd.eml » x (2).txt"]
    wb = make_wb()
    report = wb.ingest(tmp_path / "docs", progress=False)  # the whole file is indexed, every part
    assert report.ok and len({c.part for c in wb.chunks()}) == 7


@pytest.mark.parametrize("name,data,reason", [
    ("empty.txt", b"", "empty file"),
    ("zero.docx", b"", "empty file"),
    ("junk.txt", bytes(range(256)) * 40, "binary content"),
    ("fake.pdf", b"just some text, not a pdf", "not a valid PDF"),
    ("fake.docx", b"PK\x03\x04" + b"\x00" * 100, "corrupt zip"),
    ("legacy.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "password-protected"),
    ("image.png", b"\x89PNG....", "needs OCR, which is off"),  # default limits; with OCR on: test_ocr
    ("archive.zip", b"PK\x03\x04" + b"\x00" * 100, "unsupported file type"),
])
def test_bad_input_gets_a_clear_reason(name, data, reason):
    with pytest.raises(ParseError, match=reason):
        parse_bytes(data, name)


def test_wrong_extension_is_read_by_content(tmp_path):
    pdf = make_pdf(tmp_path / "real.pdf", ["Content that is really a PDF."])
    [doc] = parse(pdf, name="misnamed.docx")
    assert doc.format == "pdf"
    assert "really a PDF" in doc.text


def test_zip_bomb_is_refused_before_expansion(tmp_path):
    bomb = make_zip_bomb(tmp_path / "bomb.docx", mb=300)
    assert bomb.stat().st_size < 2 << 20
    with pytest.raises(ParseError, match="zip bomb|over the"):
        parse(bomb)
