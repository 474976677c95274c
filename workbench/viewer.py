"""The source viewer's data: a cited passage in its surrounding text, and a PDF page as an image.

`source_view` reads only the catalog (the extracted text kept at ingest). `open_original` opens
the indexed file only if it is still the very file that was indexed (no symbolic link anywhere on
its path, same size, time and content hash), and everything served (the download, the page image)
is read from that one descriptor, so a file swapped after the check is never what is served.
`render_pdf_page` has pdfium draw a page of it in a separate bounded process
(`workbench.render_worker`: clean environment, no network, no file but the one it is handed,
memory, CPU and pixel limits) under a wall-clock deadline, at most `RENDERS_AT_ONCE` at a time per
process. Callers check permissions first (`workbench.access`). Leaves out: rendering Office formats
(the viewer shows their extracted text and offers the file).
"""

from __future__ import annotations

import io
import json
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from workbench.errors import FileCheck, FileCheckError, NotFoundError, WorkbenchError
from workbench.files import hash_of, open_checked
from workbench.load.sandbox import killed_by_cpu_limit, read_frame, worker_env, write_frame
from workbench.records import Chunk, Document, SourceView

CONTEXT_CHARS = 1200
RENDERS_AT_ONCE = 2
MAX_WORKER_OUTPUT = 64 * 2**20  # a PNG of at most 4 Mpx is far smaller
_render_slots = threading.BoundedSemaphore(RENDERS_AT_ONCE)


def source_view(catalog, chunk: Chunk, document: Document, context_chars: int = CONTEXT_CHARS) -> SourceView:
    """The passage ``chunk`` with up to ``context_chars`` of its document's text on each side."""
    text = catalog.document_text(chunk.doc_id)
    before = text[max(0, chunk.start - context_chars): chunk.start]
    after = text[chunk.end: chunk.end + context_chars]
    if chunk.start > context_chars:
        before = "…" + before[before.find(" ") + 1:]
    if chunk.end + context_chars < len(text):
        after = after[: after.rfind(" ")] + "…"
    ocr = catalog.ocr_pages([chunk.doc_id]).get(chunk.doc_id, {}).get(chunk.page)
    return SourceView(chunk, document, before, after, ocr)


@dataclass(frozen=True, slots=True)
class Original:
    """An indexed file opened for reading after `open_original`'s checks; close it (or use ``with``)."""

    file: BinaryIO
    name: str
    size: int

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> "Original":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_original(doc: Document, opener=None) -> Original:
    """The file of ``doc`` opened for reading, if it is still the file that was indexed: reached through
    no symbolic link, a regular file with the size, modification time and content hash recorded at
    ingest. NotFoundError saying why otherwise. Read (or serve) from the returned file only.
    ``opener`` (`workbench.sources.opener_for`: a share's file) reads it where it lives instead,
    checked against the recorded hash and size."""
    name = Path(doc.path).name
    try:
        fd = opener(doc.path, doc.content_hash) if opener is not None else open_checked(doc.path)
    except FileCheckError as exc:
        gone = exc.kind is FileCheck.MISSING
        changed = exc.kind is FileCheck.CHANGED
        raise NotFoundError(f"{name} is no longer in its folder (re-index to update the sources)" if gone else
                            f"{name} changed since it was indexed; it is served again after the next re-index"
                            if changed else f"{name} is not served: {exc}") from None
    except WorkbenchError as exc:  # the share cannot be reached now
        raise NotFoundError(f"{name} cannot be read from its share now: {exc}") from None
    try:
        st = os.fstat(fd)
        same = st.st_size == doc.size and (opener is not None or (abs(st.st_mtime - doc.mtime) <= 1e-3
                                                                  and hash_of(fd) == doc.content_hash))
        if not same:
            raise NotFoundError(f"{name} changed since it was indexed; it is served again after the next re-index")
        os.lseek(fd, 0, os.SEEK_SET)
        return Original(os.fdopen(fd, "rb"), name, st.st_size)
    except BaseException:
        os.close(fd)
        raise


@dataclass(frozen=True, slots=True)
class RenderLimits:
    """Bounds on drawing one page image."""

    timeout_s: float = 20.0  # wall clock, worker start-up included
    cpu_s: int = 10
    memory_mb: int = 1024
    wait_s: float = 30.0  # for one of the RENDERS_AT_ONCE slots


def render_pdf_page(pdf: str | Original, page: int, width_px: int = 1000, *,
                    limits: RenderLimits = RenderLimits()) -> bytes:
    """PNG bytes of page ``page`` (1-based) of ``pdf`` (an `Original`, or a path, opened here without
    following links), ``width_px`` wide (smaller when the page's shape would need more than
    `workbench.render_worker.MAX_PIXELS`).

    Raises NotFoundError when the file or page is gone, WorkbenchError when drawing it failed or
    overran its limits, or when too many images are being drawn already.
    """
    if not _render_slots.acquire(timeout=limits.wait_s):
        raise WorkbenchError(f"{RENDERS_AT_ONCE} page images are being drawn already; try again in a moment")
    try:
        if isinstance(pdf, Original):
            return _render_in_worker(pdf.file.fileno(), pdf.name, page, width_px, limits)
        try:
            fd = open_checked(pdf)
        except FileCheckError as exc:
            raise NotFoundError(f"cannot show page {page} of {Path(pdf).name}: {exc}") from None
        try:
            return _render_in_worker(fd, Path(pdf).name, page, width_px, limits)
        finally:
            os.close(fd)
    finally:
        _render_slots.release()


def _render_in_worker(fd: int, name: str, page: int, width_px: int, limits: RenderLimits) -> bytes:
    """Draw from the open file ``fd``: the worker gets a duplicate of it and no access to any path."""
    what = f"page {page} of {name}"
    os.lseek(fd, 0, os.SEEK_SET)
    proc = subprocess.Popen([sys.executable, "-m", "workbench.render_worker", str(limits.memory_mb), str(limits.cpu_s)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            close_fds=True, pass_fds=(fd,), env=worker_env())
    try:
        write_frame(proc.stdin, json.dumps({"fd": fd, "page": page, "width_px": width_px}).encode())
        proc.stdin.close()
        output = _read_output(proc, limits.timeout_s)
    except TimeoutError:
        raise WorkbenchError(f"drawing {what} took longer than {limits.timeout_s:g}s and was stopped; "
                             "open the PDF instead") from None
    except (BrokenPipeError, OverflowError):
        output = b""
    finally:
        _reap(proc)
    return _image_from(output, proc.returncode, what, limits)


def _image_from(output: bytes, returncode: int, what: str, limits: RenderLimits) -> bytes:
    """The PNG in a worker's output, or the error that says why there is none."""
    stream = io.BytesIO(output)
    status, png = read_frame(stream), read_frame(stream)
    if status is None:
        if killed_by_cpu_limit(returncode):
            raise WorkbenchError(f"drawing {what} used more than {limits.cpu_s} s of CPU and was stopped; "
                                 "open the PDF instead")
        why = f"signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
        raise WorkbenchError(f"the page renderer stopped on {what} ({why}; drawing it may need more than "
                             f"{limits.memory_mb} MB); open the PDF instead")
    status = json.loads(status)
    if status.get("missing"):
        raise NotFoundError(f"cannot show {what}: {status['reason']}")
    if not status["ok"] or png is None:
        raise WorkbenchError(f"cannot draw {what} ({status.get('reason', 'no image')}); open the PDF instead")
    return png


def _read_output(proc: subprocess.Popen, timeout_s: float) -> bytes:
    """Everything the worker writes until it closes stdout; TimeoutError past the deadline,
    OverflowError past MAX_WORKER_OUTPUT."""
    deadline, fd, chunks, size = time.monotonic() + timeout_s, proc.stdout.fileno(), [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass  # it said all it had to; _reap stops it
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_WORKER_OUTPUT:
            raise OverflowError
        chunks.append(chunk)


def _reap(proc: subprocess.Popen) -> None:
    proc.kill()  # a no-op when it has exited
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        try:
            stream.close()
        except OSError:
            pass
