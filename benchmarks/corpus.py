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
LARGE_TARGET_PAGES = 10_000


def _all_doc_pdfs() -> list[str]:
    """Every distinct PDF under /usr/share/doc (the --large corpus)."""
    seen, out = set(), []
    for path in sorted(glob.glob("/usr/share/doc/**/*.pdf", recursive=True)):
        real = str(Path(path).resolve())
        if real not in seen:
            seen.add(real)
            out.append(path)
    return out


def page_count(path: str) -> int:
    import pypdfium2 as pdfium

    with pdfium.PdfDocument(path) as pdf:
        return len(pdf)


def build(dest: Path, large: bool = False) -> tuple[list[Path], int]:
    """Copy the corpus PDFs into ``dest``; return the copies and their total page count.

    The large corpus is every PDF under /usr/share/doc; when those hold fewer than 10,000 pages,
    the biggest manuals are added again under other names until they do (the copies' chunks are
    stored like any others; their embeddings come from the cache). The output says so.
    """
    missing = [p for p in MANUALS if not Path(p).exists()]
    if missing:
        sys.exit("missing corpus files; run: apt-get install r-doc-pdf c++-annotations-pdf\n  " + "\n  ".join(missing))
    wanted = _all_doc_pdfs() if large else MANUALS
    dest.mkdir(parents=True, exist_ok=True)
    copies, pages = [], 0
    for i, src in enumerate(wanted):
        target = dest / f"{i:03d}-{Path(src).name}"
        shutil.copy(src, target)
        copies.append(target)
        pages += page_count(src)
    if large:
        distinct = pages
        for src in sorted(wanted, key=page_count, reverse=True):
            if pages >= LARGE_TARGET_PAGES:
                break
            target = dest / f"copy-{Path(src).name}"
            shutil.copy(src, target)
            copies.append(target)
            pages += page_count(src)
        print(f"large corpus: {distinct} distinct pages, {pages - distinct} more in copies of the largest manuals")
    return copies, pages


TEXT_SOURCES = ("/usr/share/doc/python3.11/html/**/*.html", "/usr/share/doc/postgresql-doc-15/html/*.html",
                "/usr/share/doc/debian-handbook/html/en-US/*.html")
TEXT_PACKAGES = "python3.11-doc postgresql-doc-15 debian-handbook r-doc-pdf c++-annotations-pdf"


def text_pool() -> list[list[str]]:
    """The words of real English documentation, one list per document: the HTML of the Python 3.11,
    PostgreSQL 15 and Debian Administrator's Handbook manuals and the text of the PDF manuals above
    (about 4.4M words). Exits with the apt command when the packages are missing."""
    import html
    import re

    import pypdfium2 as pdfium

    tag, word = re.compile(r"<script.*?</script>|<style.*?</style>|<[^>]+>", re.S | re.I), re.compile(r"\w+")
    pages = [p for pattern in TEXT_SOURCES for p in sorted(glob.glob(pattern, recursive=True))]
    if len(pages) < 1000 or any(not Path(p).exists() for p in MANUALS):
        sys.exit(f"missing text corpus; run: apt-get install {TEXT_PACKAGES}")
    docs = [word.findall(html.unescape(tag.sub(" ", Path(p).read_text(encoding="utf-8", errors="replace"))))
            for p in pages]
    for path in MANUALS:
        with pdfium.PdfDocument(path) as pdf:
            docs.append(word.findall(" ".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))))
    return [d for d in docs if len(d) >= 200]


# The page-level benchmark (benchmarks/page_retrieval.py): 21 long manuals, each under the name its
# questions use. Packages: r-doc-pdf lilypond-doc-pdf debian-faq nettle-dev valgrind
# python-reportlab-doc why3-doc-pdf gri-pdf-doc c++-annotations-pdf
_LILY = "/usr/share/doc/lilypond/html/Documentation/"
PAGE_CORPUS = {
    **{f"{m}.pdf": f"/usr/share/doc/r-doc-pdf/manual/{m}.pdf"
       for m in ("R-FAQ", "R-admin", "R-data", "R-exts", "R-intro", "R-ints", "R-lang")},
    **{f"lilypond-{m}.pdf": f"{_LILY}{m}.pdf"
       for m in ("contributor", "essay", "extending", "learning", "music-glossary", "usage", "web")},
    "debian-faq.pdf": "/usr/share/doc/debian/FAQ/debian-faq.en.pdf.gz",
    "nettle.pdf": "/usr/share/doc/nettle-dev/nettle.pdf.gz",
    "valgrind-manual.pdf": "/usr/share/doc/valgrind/valgrind_manual.pdf.gz",
    "reportlab-userguide.pdf": "/usr/share/doc/python-reportlab-doc/reportlab-userguide.pdf",
    "why3-manual.pdf": "/usr/share/doc/why3-doc-pdf/manual.pdf",
    "gri.pdf": "/usr/share/doc/gri/gri.pdf.gz",
    "cplusplus.pdf": "/usr/share/doc/c++-annotations/cplusplus.pdf",
}
PAGE_PACKAGES = ("r-doc-pdf lilypond-doc-pdf debian-faq nettle-dev valgrind python-reportlab-doc why3-doc-pdf "
                 "gri-pdf-doc c++-annotations-pdf")


def build_pages(dest: Path) -> list[Path]:
    """Copy (or gunzip) the page benchmark's PDFs into ``dest`` under their benchmark names."""
    import gzip

    missing = [p for p in PAGE_CORPUS.values() if not Path(p).exists()]
    if missing:
        sys.exit(f"missing corpus files; run: apt-get install {PAGE_PACKAGES}\n  " + "\n  ".join(missing))
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for name, src in PAGE_CORPUS.items():
        target = dest / name
        if not target.exists():
            if src.endswith(".gz"):
                with gzip.open(src, "rb") as f:
                    target.write_bytes(f.read())
            else:
                shutil.copy(src, target)
        out.append(target)
    return out


def page_texts(path: Path) -> list[str]:
    """Each page's text as the workbench's PDF loader extracts it (1-based page n is item n-1)."""
    import pypdfium2 as pdfium

    texts = []
    with pdfium.PdfDocument(str(path)) as pdf:
        for page in pdf:
            textpage = page.get_textpage()
            texts.append(textpage.get_text_bounded().replace("\r\n", "\n").replace("\r", "\n").replace("\x02", ""))
            textpage.close()
            page.close()
    return texts
