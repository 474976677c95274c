"""Draw one PDF page as a PNG in a bounded process (`python -m workbench.render_worker`).

`workbench.viewer.render_pdf_page` starts one of these per page image, so pdfium never runs
inside the web server. The worker takes the parser sandbox's bounds (`workbench.load.sandbox`: a
clean environment, no network, an address-space limit, no core dumps, and where Landlock exists no
file but the one it is handed as an open descriptor) plus a CPU-time limit, reads one JSON request
frame on stdin and answers with a JSON status frame and, on success, a
PNG frame on stdout. The page is scaled so that its image never has more than `MAX_PIXELS`
pixels: a page of an extreme shape is drawn smaller instead of as a huge bitmap.
Leaves out: the wall-clock deadline, the kill and the bound on renders at once (the parent's
side, in `workbench.viewer`).
"""

from __future__ import annotations

import io
import json
import math
import os
import sys

from workbench.load.sandbox import enter_sandbox, limit_cpu, read_frame, write_frame

MAX_PIXELS = 4_000_000  # 1000 x 4000: a portrait page at 1000 px fits, a 30 m banner does not
MAX_SCALE = 4.0  # 288 dpi: never more detail than that, whatever width is asked for


def page_scale(width_pt: float, height_pt: float, width_px: int) -> float:
    """The pdfium scale that draws a page ``width_px`` wide, shrunk to stay within MAX_PIXELS."""
    width_pt, height_pt = max(width_pt, 1.0), max(height_pt, 1.0)
    scale = min(max(width_px, 1) / width_pt, MAX_SCALE)
    while math.ceil(width_pt * scale) * math.ceil(height_pt * scale) > MAX_PIXELS:
        scale *= min(0.99, math.sqrt(MAX_PIXELS / (width_pt * height_pt * scale * scale)))
    return scale


def render(fd: int, page: int, width_px: int) -> bytes:
    """PNG bytes of page ``page`` (1-based) of the PDF open as ``fd``; LookupError when it has no such page."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(os.fdopen(fd, "rb"), autoclose=True)
    try:
        if not 1 <= page <= len(pdf):
            raise LookupError(f"page {page} is not in this PDF (it has {len(pdf)})")
        p = pdf[page - 1]
        image = p.render(scale=page_scale(*p.get_size(), width_px)).to_pil()
        buf = io.BytesIO()
        image.save(buf, format="PNG", optimize=False)
        return buf.getvalue()
    finally:
        pdf.close()


def answer(request: dict) -> tuple[dict, bytes]:
    """The status message (and PNG) for one request; never raises for a bad file."""
    try:
        return {"ok": True}, render(int(request["fd"]), int(request["page"]), int(request["width_px"]))
    except FileNotFoundError:
        return {"ok": False, "missing": True, "reason": "the file is no longer there"}, b""
    except LookupError as exc:
        return {"ok": False, "missing": True, "reason": str(exc)}, b""
    except MemoryError:
        return {"ok": False, "reason": "drawing it needed more memory than the renderer may use"}, b""
    except Exception as exc:  # a broken PDF is this image's failure, reported to the viewer
        return {"ok": False, "reason": f"{type(exc).__name__}: {exc}"}, b""


def main(memory_mb: int, cpu_s: int) -> None:
    enter_sandbox(memory_mb)
    limit_cpu(cpu_s)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # nothing printed may corrupt the protocol
    frame = read_frame(sys.stdin.buffer)
    if frame is None:
        return
    status, png = answer(json.loads(frame))
    write_frame(out, json.dumps(status).encode())
    if status["ok"]:
        write_frame(out, png)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
