"""OCR: page images to text with Debian's tesseract, bounded per page, offline.

Runs inside a parser worker (`workbench.load.sandbox`): tesseract is started as the worker's
child, so it inherits the worker's address-space and CPU-time limits and its empty network
namespace, and each page gets its own wall-clock bound (``[ocr] page_timeout_s``). Images are
checked before they are decoded: a declared size above ``[ocr] max_pixels`` (an image bomb) is
refused with its dimensions. Tesseract's language data come from Debian packages
(tesseract-ocr-eng, tesseract-ocr-spa); nothing is downloaded. Each page's text comes with the mean
confidence of its words (0-100); `ocr_pages` turns those into the document's typed `OcrPage`
records, which the catalog keeps so that answers and `workbench status` can say a passage was read
by OCR and how surely. Leaves out: layout analysis beyond tesseract's
own (columns, tables), handwriting, and deskewing.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from workbench.errors import ParseError
from workbench.records import OcrPage


# Called after each page read by OCR (the parser worker sets it to tell its parent it is making
# progress, so a long scan is not killed for taking longer than one file's wall-clock bound).
on_page: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class OcrText:
    """The text tesseract read on one page and the mean confidence of its words (0-100)."""

    text: str
    confidence: float
    words: int


def engine() -> str | None:
    """The tesseract executable, or None when it is not installed."""
    return shutil.which("tesseract")


def _from_tsv(tsv: str) -> OcrText:
    """Text (lines joined by newlines, paragraphs by blank lines) and mean word confidence of
    tesseract's TSV output."""
    lines: dict[tuple[int, int, int], list[str]] = {}
    confs: list[float] = []
    for row in tsv.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != "5" or not cols[11].strip():
            continue
        try:
            conf = float(cols[10])
        except ValueError:
            continue
        if conf < 0:
            continue
        lines.setdefault((int(cols[2]), int(cols[3]), int(cols[4])), []).append(cols[11].strip())
        confs.append(conf)
    out, last_par = [], None
    for (block, par, _), words in lines.items():
        if last_par is not None and (block, par) != last_par:
            out.append("")
        out.append(" ".join(words))
        last_par = (block, par)
    return OcrText("\n".join(out).strip(), round(sum(confs) / len(confs), 1) if confs else 0.0, len(confs))


def read_image(image, languages: str, timeout_s: float) -> OcrText:
    """OCR one PIL image (converted to 8-bit grey, sent as PNG on tesseract's stdin)."""
    exe = engine()
    if exe is None:
        raise ParseError("needs OCR, but tesseract is not installed (apt-get install tesseract-ocr "
                         "tesseract-ocr-eng tesseract-ocr-spa; see README 'Scanned documents and images')")
    buf = io.BytesIO()
    image.convert("L").save(buf, format="PNG")
    try:
        done = subprocess.run([exe, "stdin", "stdout", "-l", languages, "--psm", "3", "tsv"], input=buf.getvalue(),
                              capture_output=True, timeout=timeout_s, env={"OMP_THREAD_LIMIT": "1"})
    except subprocess.TimeoutExpired:
        raise ParseError(f"OCR of one page took longer than {timeout_s:g} s ([ocr] page_timeout_s)") from None
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip().splitlines()
        raise ParseError(f"OCR failed ({err[-1] if err else f'tesseract exit code {done.returncode}'})")
    if on_page is not None:
        on_page()
    return _from_tsv(done.stdout.decode("utf-8", errors="replace"))


def check_pixels(width: int, height: int, max_pixels: int, what: str = "image") -> None:
    """Refuse an image whose declared size exceeds ``max_pixels`` before decoding it."""
    if width * height > max_pixels:
        raise ParseError(f"{what} declares {width} x {height} pixels, over the limit of {max_pixels:,} "
                         "([ocr] max_pixels): refused unread (an image bomb, or a scan at too high a resolution)")


def ocr_pages(pages: dict[int, OcrText]) -> tuple[OcrPage, ...]:
    """The pages read by OCR (page number -> what was read), as a document records them, in page order."""
    return tuple(OcrPage(n, p.confidence, p.words) for n, p in sorted(pages.items()))
