"""The source viewer's routes: where a citation in an answer leads.

`add_viewer_routes` adds GET /source/{chunk_id} (the cited passage in its document, as a page with
its own Content-Security-Policy: no script), /source/{chunk_id}/page.png (the PDF page drawn in a
bounded process; busy is a 503 at once, no thread held) and /source/{chunk_id}/file (the checked
original, streamed from the descriptor that was checked, never reopened by path). Each asks
`Workbench` with the requesting user's `Principal`, so a chunk they may not read is "not found",
exactly like one that does not exist. Also the pages for the workbench's own routes' errors: 404
"Not available" (NotFoundError, nobody signed in included) and 503 "Not available now" (any other
WorkbenchError, e.g. a page image over its time limit).

Leaves out: who the user is (`workbench_web.signin.Identity.principal_of` is handed in), what
the page shows (`workbench_web.render.source_page`), and the data itself (`workbench.viewer`).
"""

import html
from collections.abc import Callable
from urllib.parse import quote

from workbench import NotFoundError, Workbench, WorkbenchError
from workbench_web import render
from workbench_web.guard import SECURE_HEADERS

SOURCE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'"


def add_error_pages(app) -> None:
    """404 for NotFoundError and 503 for other WorkbenchErrors raised by the workbench's own routes."""
    from fastapi import Request
    from fastapi.responses import HTMLResponse

    @app.exception_handler(NotFoundError)
    def not_found(request: Request, exc: Exception) -> HTMLResponse:
        return HTMLResponse(f"<!doctype html><title>Not available</title><p>{html.escape(str(exc))}</p>"
                            "<p><a href='/'>Back to the assistant</a></p>", status_code=404, headers=SECURE_HEADERS)

    @app.exception_handler(WorkbenchError)
    def unavailable(request: Request, exc: Exception) -> HTMLResponse:  # e.g. a page image over its time limit
        return HTMLResponse(f"<!doctype html><title>Not available now</title><p>{html.escape(str(exc))}</p>",
                            status_code=503, headers=SECURE_HEADERS)


def add_viewer_routes(app, wb: Workbench, principal_of: Callable) -> None:
    """/source/{chunk_id}, its page.png and its file on ``app``, for ``principal_of(request)``."""
    from fastapi import Request
    from fastapi.responses import HTMLResponse, Response

    @app.get("/source/{chunk_id}", response_class=HTMLResponse)
    def source_page(chunk_id: int, request: Request):
        view = wb.source(chunk_id, principal_of(request))
        file_href = f"{chunk_id}/file" + (f"#page={view.chunk.page}" if view.is_pdf else "")
        image = f"{chunk_id}/page.png" if view.is_pdf else None
        return HTMLResponse(render.source_page(view, file_href, image),
                            headers={**SECURE_HEADERS, "Content-Security-Policy": SOURCE_CSP})

    @app.get("/source/{chunk_id}/page.png")
    def page_png(chunk_id: int, request: Request):
        png = wb.page_image(chunk_id, principal_of(request), wait_s=1.0)  # busy: 503 at once, no thread held
        return Response(png, media_type="image/png", headers=SECURE_HEADERS)

    @app.get("/source/{chunk_id}/file")
    def original(chunk_id: int, request: Request):
        """The checked file, streamed from the descriptor that was checked (never reopened by path)."""
        opened = wb.original_file(chunk_id, principal_of(request))
        return file_response(opened, inline=opened.name.lower().endswith(".pdf"))


def file_response(opened, inline: bool):
    """A checked `workbench.viewer.Original`, streamed from the descriptor that was checked (never reopened
    by path) and closed at the end: shown in the browser (``inline``, a PDF) or as a download."""
    from fastapi.responses import StreamingResponse

    def blocks():
        with opened:
            while block := opened.file.read(1 << 16):
                yield block

    # filename= for clients that read only that one (curl -OJ), in ASCII; filename* carries the real name
    plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in opened.name)
    disposition = f"{'inline' if inline else 'attachment'}; filename=\"{plain}\"; filename*=utf-8''{quote(opened.name)}"
    return StreamingResponse(blocks(), media_type="application/pdf" if inline else "application/octet-stream",
                             headers={**SECURE_HEADERS, "Content-Disposition": disposition,
                                      "Content-Length": str(opened.size)})
