"""Shared fixtures: the real embedding model (loaded once), file factories, workbench factories."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest

import workbench  # noqa: F401  (offline switches first)
from workbench.config import Config

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"


@pytest.fixture(scope="session")
def embedder(tmp_path_factory):
    """The real all-MiniLM-L6-v2 as a user's config loads it (documents on this CPU's runtime,
    queries on the ONNX copy exported once into a session folder), loaded once per test session."""
    from workbench.embed import load_embedder

    return load_embedder(Config().embedding, tmp_path_factory.mktemp("models"))


@pytest.fixture
def make_wb(tmp_path, embedder):
    """Factory: a Workbench on a fresh index folder, handed the session's embedder."""
    from workbench.pipeline import Workbench

    def factory(index_dir: Path | None = None, **ingest_overrides) -> Workbench:
        cfg = Config().with_index_dir(index_dir or tmp_path / "index")
        if ingest_overrides:
            cfg = cfg.replace("ingest", **ingest_overrides)
        return Workbench(cfg, embedder=embedder)

    return factory


@pytest.fixture(scope="session")
def llm():
    """The real SmolLM2-135M-Instruct GGUF, loaded once through the same code as Llama 3.1."""
    from workbench.config import LLMSettings
    from workbench.generate import TransformersLLM

    return TransformersLLM(LLMSettings(max_new_tokens=48))


@pytest.fixture
def sample_wb(make_wb, llm):
    """A Workbench over the sample documents, handed the session's embedder and LLM (48 new tokens)."""
    wb = make_wb()
    wb.ingest(SAMPLE, progress=False)
    return wb.replace(config=wb.config.replace("llm", max_new_tokens=48), llm=llm)


def run_cli(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run the real `workbench` command in a subprocess."""
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=kwargs.pop("cwd", ROOT), **kwargs)


# ---- real files of every format, made here -------------------------------------------------------

def make_pdf(path: Path, pages: list[str], outline: list[str] | None = None) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    for i, text in enumerate(pages):
        pdf.add_page()
        if outline:
            pdf.start_section(outline[i])
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))
    return path


def encrypt_pdf(src: Path, dst: Path, user_password: str) -> Path:
    from pypdf import PdfWriter

    w = PdfWriter(clone_from=str(src))
    w.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-256")
    w.write(str(dst))
    return dst


def make_docx(path: Path) -> Path:
    import docx

    d = docx.Document()
    d.add_heading("Fleet Manual", 0)
    d.add_heading("Engines", 1)
    d.add_paragraph("The PW127 engine is inspected every 400 flight hours.")
    d.add_heading("Borescope", 2)
    d.add_paragraph("Borescope images are archived for seven years.")
    t = d.add_table(rows=3, cols=2)
    for r, row in enumerate([("Part", "Interval"), ("Propeller", "600 h"), ("Gearbox", "1200 h")]):
        for c, v in enumerate(row):
            t.cell(r, c).text = v
    d.save(path)
    return path


def make_pptx(path: Path) -> Path:
    from pptx import Presentation

    prs = Presentation()
    for title, body, notes in [("Kickoff", "Project Falcon starts in May.", "Say hello"),
                               ("Budget", "The budget is 4.2 million euros.", "Mention the reserve")]:
        s = prs.slides.add_slide(prs.slide_layouts[1])
        s.shapes.title.text = title
        s.placeholders[1].text = body
        s.notes_slide.notes_text_frame.text = notes
    prs.save(path)
    return path


def make_xlsx(path: Path) -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Stations"
    ws.append(["Station", "Code", "Technicians"])
    ws.append(["Toulouse", "TLS", 120])
    ws.append(["Hamburg", "HAM", 45])
    wb.create_sheet("Empty")
    wb.save(path)
    return path


def make_eml(path: Path, attachments: dict[str, bytes] | None = None) -> Path:
    msg = EmailMessage()
    msg["From"] = "ops@example.org"
    msg["To"] = "all@example.org"
    msg["Subject"] = "Runway closure"
    msg["Date"] = "Mon, 02 Nov 2026 09:15:00 +0000"
    msg.set_content("Runway 32L closes on Friday for resurfacing.")
    for name, data in (attachments or {}).items():
        maintype, subtype = ("application", "octet-stream")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    path.write_bytes(bytes(msg))
    return path


def make_zip_bomb(path: Path, member: str = "word/document.xml", mb: int = 600) -> Path:
    """A DOCX-shaped zip whose main part expands to ``mb`` MB of spaces."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        info = zipfile.ZipInfo(member)
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as fh:
            chunk = b" " * (1 << 20)
            for _ in range(mb):
                fh.write(chunk)
    return path


def bytes_of(fn, suffix: str, tmp: Path) -> bytes:
    p = fn(tmp / f"x{suffix}")
    return Path(p).read_bytes()


def pytest_terminal_summary(terminalreporter):
    """Say where the browser tests left their screenshots."""
    shots = ROOT / "test-artifacts" / "web"
    if shots.is_dir() and any(shots.glob("*.png")):
        terminalreporter.write_line(f"browser test screenshots: {shots}")
    for name in ("leaks.json", "hostile.json", "fuzz.json"):
        report = ROOT / "test-artifacts" / "security" / name
        if report.exists():
            terminalreporter.write_line(f"security {name}: {report.read_text().strip()[:600]}".replace("\n", " "))
