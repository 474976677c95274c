"""Ingest pages/s with and without OCR, on the same real pages, and how much of their text OCR gets.

Takes the first N pages (default 30) of R's "An Introduction to R" (Debian's r-doc-pdf), renders
each at 200 dpi into an image and saves those as a PDF without a text layer: a scan of the same
pages. Ingests the original (text layer) and the scan with `workbench ingest` into fresh indexes in
one process, and prints pages/s for both, the ratio, the OCR seconds the report counts, and the
share of the original's words found in the OCR text (case-folded, per page). Run: `make bench-ocr`
(ARGS="--pages 60"). Needs: apt-get install r-doc-pdf tesseract-ocr tesseract-ocr-eng.
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import machine

import workbench  # noqa: F401
from workbench.config import Config
from workbench.pipeline import Workbench

SOURCE = Path("/usr/share/doc/r-doc-pdf/manual/R-intro.pdf")


def scan(src: Path, dest: Path, pages: int) -> tuple[Path, list[str]]:
    """The first ``pages`` pages of ``src`` as text-layer PDF and as a scan; their text layers."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(src)
    texts, images = [], []
    original = pdfium.PdfDocument.new()
    original.import_pages(pdf, list(range(pages)))
    original.save(dest / "original.pdf")
    for i in range(pages):
        page = pdf[i]
        texts.append(page.get_textpage().get_text_range())
        images.append(page.render(scale=200 / 72, grayscale=True).to_pil().convert("L"))
    images[0].save(dest / "scan" / "scanned.pdf", resolution=200, save_all=True, append_images=images[1:])
    return dest / "original.pdf", texts


def word_recall(truth: str, got: str) -> float:
    want, have = Counter(re.findall(r"\w+", truth.casefold())), Counter(re.findall(r"\w+", got.casefold()))
    total = sum(want.values())
    return sum(min(n, have[w]) for w, n in want.items()) / total if total else 1.0


def main() -> None:
    pages = int(sys.argv[sys.argv.index("--pages") + 1]) if "--pages" in sys.argv else 30
    if not SOURCE.exists():
        sys.exit("missing corpus; run: apt-get install r-doc-pdf")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "text").mkdir()
        (root / "scan").mkdir()
        original, texts = scan(SOURCE, root, pages)
        original.rename(root / "text" / "original.pdf")
        wb = Workbench(Config().with_index_dir(root / "warm"))
        print(machine.describe(wb.embedder))
        wb.ingest(root / "text", progress=False)  # loads the model and warms the caches for both runs
        rows = {}
        for label in ("text", "scan"):
            run = Workbench(Config().with_index_dir(root / f"index-{label}"), embedder=wb.embedder)
            t = time.perf_counter()
            report = run.ingest(root / label, progress=False)
            rows[label] = (time.perf_counter() - t, report)
        reader = Workbench(Config().with_index_dir(root / "index-scan"), embedder=wb.embedder).reader()
        doc = reader.catalog.documents()[0]
        chunks = reader.catalog.chunks([c for c in reader.catalog.chunk_ids_of([doc.doc_id])])
        by_page: dict[int, str] = {}
        for c in chunks:
            by_page[c.page] = by_page.get(c.page, "") + " " + c.text
        recall = [word_recall(texts[p - 1], by_page.get(p, "")) for p in range(1, pages + 1)]
        print(f"{pages} pages of {SOURCE.name}; scan rendered at 200 dpi")
        for label, (seconds, report) in rows.items():
            extra = f", {report.ocr_pages} pages OCR'd in {report.ocr_seconds:.1f} s" if report.ocr_pages else ""
            print(f"{label:5s} {pages / seconds:7.2f} pages/s ({seconds:.1f} s, {report.chunks_added} chunks{extra})")
        print(f"with OCR / without: {rows['text'][0] / rows['scan'][0]:.2f}x the speed")
        print(f"original words found in the OCR text: mean {sum(recall) / len(recall):.3f}, "
              f"worst page {min(recall):.3f}")


if __name__ == "__main__":
    main()
