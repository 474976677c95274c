"""OCR with Debian's tesseract: scanned PDFs, PNG, multi-page TIFF, corrupt images and image bombs,
through `workbench ingest`, `search` and `status` as a user runs them, and answers that say when
their evidence is weak."""

from __future__ import annotations

import json
import struct
import zlib

import pytest

from conftest import run_cli
from workbench.answer import asks_for_number, weak_evidence
from workbench.records import AnswerFlag, Chunk, Hit, Refusal, WeakEvidence

def page(lines: list[str], size=(1700, 2200)):
    """A white page with ``lines`` drawn as pixels: no text layer anywhere."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=40)  # Pillow's own font: no system font package needed
    for i, line in enumerate(lines):
        draw.text((120, 150 + i * 70), line, fill=0, font=font)
    return img


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` pixels but holds one row of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    src = tmp_path_factory.mktemp("ocr") / "scans"
    src.mkdir()
    page(["Staff bulletin No. 7", "The north car park closes on 3 March", "for resurfacing works."]).save(
        src / "bulletin.pdf", resolution=200)  # a scanned page: an image in a PDF, no text layer
    page(["Notice: the canteen opens at 7:30", "from Monday to Friday."], (1400, 600)).save(src / "notice.png")
    first, second = page(["Archive scan, page one.", "Budget review in room 12."]), \
        page(["Archive scan, page two.", "The quasar ledger closes every June."])
    first.save(src / "archive.tiff", save_all=True, append_images=[second])
    (src / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image at all" * 20)
    (src / "bomb.png").write_bytes(png_declaring(100_000, 100_000))
    (src / "readme.txt").write_text("Plain text beside the scans is indexed as usual.")
    return src


@pytest.fixture(scope="module")
def ingested(scans, tmp_path_factory):
    index = tmp_path_factory.mktemp("ocr-index") / "index"
    out = run_cli("ingest", str(scans), "--index", str(index), "--json")
    return index, out


def test_scans_and_images_are_read_by_ocr_and_bad_images_are_reported(scans, ingested):
    index, out = ingested
    assert out.returncode == 1, out.stderr  # some files failed (reported), the rest are indexed
    report = json.loads(out.stdout)
    assert sorted(report["added"]) == sorted(str(scans / n) for n in
                                             ("bulletin.pdf", "notice.png", "archive.tiff", "readme.txt"))
    assert report["ocr_pages"] == 4 and report["ocr_seconds"] > 0
    reasons = {f["path"].rsplit("/", 1)[-1]: f["reason"] for f in report["failed"]}
    assert set(reasons) == {"corrupt.png", "bomb.png"}
    assert "corrupt or unreadable image" in reasons["corrupt.png"]
    assert "100000 x 100000 pixels" in reasons["bomb.png"] and "refused unread" in reasons["bomb.png"]


@pytest.mark.parametrize("query,file,page_no", [
    ("When does the north car park close for resurfacing?", "bulletin.pdf", 1),
    ("canteen opening time", "notice.png", 1),
    ("quasar ledger closes June", "archive.tiff", 2),
])
def test_ocr_text_is_found_by_search_and_marked_as_read_by_ocr(ingested, query, file, page_no):
    index, _ = ingested
    out = run_cli("search", query, "--index", str(index), "-k", "1", "--json")
    assert out.returncode == 0, out.stderr
    hit = json.loads(out.stdout)[0]
    assert hit["path"].endswith(file) and hit["page"] == page_no
    assert 80 <= hit["ocr_confidence"] <= 100  # clean rendered text reads with high confidence
    text = run_cli("search", query, "--index", str(index), "-k", "1").stdout
    assert "read by OCR, confidence" in text


def test_status_lists_low_confidence_pages(ingested, tmp_path):
    index, _ = ingested
    strict = tmp_path / "strict.toml"
    strict.write_text("[ocr]\nlow_confidence = 99.5\n")  # every page counts as low at this bar
    out = run_cli("status", "--index", str(index), "--config", str(strict))
    assert "pages read by OCR with low confidence: 4" in out.stdout, out.stdout + out.stderr
    assert "archive.tiff, page 2:" in out.stdout
    assert "low confidence" not in run_cli("status", "--index", str(index)).stdout  # default bar: 60%


def test_ocr_off_reports_images_and_says_how_to_turn_it_on(scans, tmp_path):
    off = tmp_path / "off.toml"
    off.write_text("[ocr]\nenabled = false\n")
    out = run_cli("ingest", str(scans), "--index", str(tmp_path / "ix"), "--config", str(off), "--json")
    reasons = {f["path"].rsplit("/", 1)[-1]: f["reason"] for f in json.loads(out.stdout)["failed"]}
    assert "[ocr] enabled" in reasons["notice.png"] and "[ocr] enabled" in reasons["bulletin.pdf"]


def _hit(text: str, ocr: float | None = None) -> Hit:
    chunk = Chunk(chunk_id=1, doc_id="d", ordinal=0, text=text, start=0, end=len(text), page=1)
    return Hit(chunk=chunk, score=1.0, rank=1, ocr_confidence=ocr)


def test_weak_evidence_rules():
    assert asks_for_number("How many days of leave carry over?") and asks_for_number("¿Cuántos días quedan?")
    assert asks_for_number("What percentage of staff work remotely?") and not asks_for_number("Who runs payroll?")
    assert not asks_for_number("How long is the probation period?")  # often answered in words
    no_number = weak_evidence("How many days carry over?", [_hit("Leave carries over with approval.")], 60)
    assert no_number.kind is WeakEvidence.NO_NUMBER
    assert str(no_number) == "the question asks for a number and no retrieved passage contains one"
    assert weak_evidence("How many days carry over?", [_hit("Up to 5 days carry over.")], 60) is None
    low = weak_evidence("Who signs?", [_hit("The clerk signs.", 41.0)], 60)
    assert low.kind is WeakEvidence.LOW_OCR and "read by OCR with low confidence (41%" in str(low)
    assert weak_evidence("Who signs?", [_hit("The clerk signs.", 93.0)], 60) is None


def test_an_answer_from_a_low_confidence_scan_says_so(ingested, make_wb, llm):
    from workbench.config import Config
    from workbench.pipeline import Workbench

    index, _ = ingested
    cfg = Config().with_index_dir(index).replace("ocr", low_confidence=99.5)
    wb = Workbench(cfg, embedder=make_wb().embedder).replace(llm=llm)
    answer = wb.ask("When does the north car park close for resurfacing?")
    assert answer.hits[0].chunk.path.endswith("bulletin.pdf")
    assert answer.weak_evidence.startswith("the best passage was read by OCR with low confidence")
    assert answer.weakness.kind is WeakEvidence.LOW_OCR
    assert any(f.kind is AnswerFlag.WEAK_EVIDENCE and str(f).startswith("weak evidence:") for f in answer.flags())
    assert answer.citations[0].ocr_note.startswith("read by OCR (confidence")


def test_a_number_no_passage_holds_is_refused_without_the_model(make_wb, tmp_path):
    from test_answer import ExplodingLLM, ScriptedLLM  # Exploding fails the test if the model is called

    src = tmp_path / "policy"
    src.mkdir()
    (src / "parking.md").write_text("# Parking\n\nThe north car park is reserved for visitors and staff with a "
                                    "permit. Permits are issued by the facilities team on request.")
    wb = make_wb()
    wb.ingest(src, progress=False)
    answer = wb.replace(llm=ExplodingLLM("")).ask("How many parking spaces does the north car park have?")
    assert answer.refused and answer.model == "(not called)"
    assert answer.refusal_reason == "the question asks for a number and no retrieved passage contains one"
    assert answer.refusal.kind is Refusal.NO_NUMBER and answer.weakness.kind is WeakEvidence.NO_NUMBER
    permit = wb.replace(llm=ScriptedLLM("The facilities team issues them [1].")).ask("Who issues parking permits?")
    assert not permit.refused and permit.weak_evidence == ""  # not a number: the model answers


def test_a_long_scan_outlives_the_per_file_timeout_while_pages_are_read(tmp_path):
    """20 scanned pages take longer than [ingest] parse_timeout_s in all; each page read is progress,
    so the file is read to the end (a parser making no progress is stopped: test_sandbox)."""
    src = tmp_path / "long"
    src.mkdir()
    pages = [page([f"Scanned register, page {i + 1}.", f"Entry {i + 1}: boiler inspection passed."]) for i in range(20)]
    pages[0].save(src / "register.pdf", resolution=200, save_all=True, append_images=pages[1:])
    cfg = tmp_path / "tight.toml"
    cfg.write_text("[ingest]\nparse_timeout_s = 6\n")
    out = run_cli("ingest", str(src), "--index", str(tmp_path / "ix"), "--config", str(cfg), "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["ocr_pages"] == 20 and report["ocr_seconds"] > 6  # longer than one file's bound
    hit = json.loads(run_cli("search", "register page 20 boiler inspection", "--index", str(tmp_path / "ix"),
                             "-k", "3", "--json").stdout)
    assert 20 in [h["page"] for h in hit]


def test_a_page_whose_ocr_fails_keeps_the_rest_of_the_pdf_and_other_decoders_are_not_reached(tmp_path):
    import pypdfium2 as pdfium

    from conftest import make_pdf
    from workbench.errors import ParseError
    from workbench.load import LoadLimits, parse_bytes

    make_pdf(tmp_path / "text.pdf", ["The text layer of page one survives a failed OCR of page two."])
    page(["A scanned second page."]).save(tmp_path / "scan.pdf", resolution=200)
    merged = pdfium.PdfDocument(tmp_path / "text.pdf")
    merged.import_pages(pdfium.PdfDocument(tmp_path / "scan.pdf"))
    merged.save(tmp_path / "mixed.pdf")
    doc = parse_bytes((tmp_path / "mixed.pdf").read_bytes(), "mixed.pdf", LoadLimits(ocr_languages="xyz"))[0]
    assert [b.page for b in doc.blocks] == [1] and "survives" in doc.blocks[0].text
    assert doc.metadata["ocr_failed_pages"].startswith("2: OCR failed")
    only_scan = (tmp_path / "scan.pdf").read_bytes()
    with pytest.raises(ParseError, match="a scanned PDF, and OCR failed"):
        parse_bytes(only_scan, "scan.pdf", LoadLimits(ocr_languages="xyz"))
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"  # Pillow would start Ghostscript
    with pytest.raises(ParseError, match="corrupt or unreadable image"):
        parse_bytes(eps, "logo.png", LoadLimits(ocr_languages="eng"))
    from fpdf import FPDF

    page(["LOGO"], (200, 100)).save(tmp_path / "logo.png")
    pdf = FPDF()
    pdf.add_page()
    pdf.image(str(tmp_path / "logo.png"), x=10, y=10, w=30)  # a small image on an empty page: not a scan
    pdf.output(str(tmp_path / "logo.pdf"))
    with pytest.raises(ParseError, match=r"^no extractable text$"):  # OCR (which would fail here) not tried
        parse_bytes((tmp_path / "logo.pdf").read_bytes(), "logo.pdf", LoadLimits(ocr_languages="xyz"))
