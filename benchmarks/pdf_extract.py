"""PDF text extraction: pypdfium2 (the workbench's choice) against pypdf, on the same real manuals.

Prints pages/s for each, the speed ratio, and a quality proxy: per page, the overlap (Jaccard) of
the two extractions' word sets, and the words each found. Run: `make bench-pdf`.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from pathlib import Path

import machine
from corpus import build

WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]+")


def pdfium_pages(path: Path) -> list[str]:
    import pypdfium2 as pdfium

    out = []
    with pdfium.PdfDocument(str(path)) as pdf:
        for page in pdf:
            tp = page.get_textpage()
            out.append(tp.get_text_bounded())
            tp.close()
            page.close()
    return out


def pypdf_pages(path: Path) -> list[str]:
    from pypdf import PdfReader

    return [p.extract_text() or "" for p in PdfReader(str(path)).pages]


def main() -> None:
    print(machine.describe())
    with tempfile.TemporaryDirectory() as tmp:
        files, pages = build(Path(tmp))
        results = {}
        for name, fn in (("pypdf", pypdf_pages), ("pypdfium2", pdfium_pages)):
            t = time.perf_counter()
            results[name] = [fn(f) for f in files]
            results[name + "_s"] = time.perf_counter() - t
        jacc, words_a, words_b = [], 0, 0
        for doc_a, doc_b in zip(results["pypdfium2"], results["pypdf"]):
            for a, b in zip(doc_a, doc_b):
                wa, wb = set(WORD.findall(a)), set(WORD.findall(b))
                words_a += len(WORD.findall(a))
                words_b += len(WORD.findall(b))
                if wa or wb:
                    jacc.append(len(wa & wb) / len(wa | wb))
        print(f"corpus: {len(files)} PDFs, {pages} pages")
        for name in ("pypdf", "pypdfium2"):
            print(f"{name:10s} {results[name + '_s']:7.1f} s  {pages / results[name + '_s']:7.1f} pages/s")
        print(f"speed ratio pypdfium2/pypdf: {results['pypdf_s'] / results['pypdfium2_s']:.1f}x")
        print(f"words extracted: pypdfium2 {words_a}, pypdf {words_b}; per-page word-set Jaccard: "
              f"mean {statistics.mean(jacc):.3f}, median {statistics.median(jacc):.3f}")


if __name__ == "__main__":
    main()
