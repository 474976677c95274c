"""Real PDF corpora from Debian packages, shared by the benchmarks (no corpus is committed).

Install: apt-get install r-doc-pdf c++-annotations-pdf debian-faq  (and lilypond-doc-pdf for the
10,000-page memory run).
"""

from __future__ import annotations

import glob
import shutil
import sys
from pathlib import Path

MANUALS = [
    "/usr/share/doc/r-doc-pdf/manual/R-FAQ.pdf",
    "/usr/share/doc/r-doc-pdf/manual/R-admin.pdf",
    "/usr/share/doc/r-doc-pdf/manual/R-data.pdf",
    "/usr/share/doc/r-doc-pdf/manual/R-exts.pdf",
    "/usr/share/doc/r-doc-pdf/manual/R-intro.pdf",
    "/usr/share/doc/r-doc-pdf/manual/R-ints.pdf",
    "/usr/share/doc/r-doc-pdf/manual/R-lang.pdf",
    "/usr/share/doc/c++-annotations/cplusplus.pdf",
]
LARGE_EXTRA = ["/usr/share/doc/r-doc-pdf/manual/refman.pdf", "/usr/share/doc/c++-annotations/cplusplusus.pdf",
               *sorted(glob.glob("/usr/share/doc/lilypond/html/**/*.pdf", recursive=True))]


def page_count(path: str) -> int:
    import pypdfium2 as pdfium

    with pdfium.PdfDocument(path) as pdf:
        return len(pdf)


def build(dest: Path, large: bool = False) -> tuple[list[Path], int]:
    """Copy the corpus PDFs into ``dest``; return the copies and their total page count."""
    wanted = MANUALS + (LARGE_EXTRA if large else [])
    missing = [p for p in wanted if not Path(p).exists()]
    if missing and not large:
        sys.exit("missing corpus files; run: apt-get install r-doc-pdf c++-annotations-pdf\n  " + "\n  ".join(missing))
    dest.mkdir(parents=True, exist_ok=True)
    copies = []
    for src in (p for p in wanted if Path(p).exists()):
        target = dest / Path(src).name
        if target.exists():
            target = dest / f"{Path(src).parent.name}-{Path(src).name}"
        shutil.copy(src, target)
        copies.append(target)
    return copies, sum(page_count(str(p)) for p in copies)
