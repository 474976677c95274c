"""Source views: a cited passage in its document, its PDF page as an image, the original file.

Every view checks the asker's right to read the document (a refusal and a missing chunk look the
same to the asker) and is audited: ``view``, ``page`` or ``download``, and ``refused``. Leaves out:
what a view holds (`workbench.viewer`) and the rules of access (`workbench.access`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from workbench.access import OPERATOR
from workbench.errors import NotFoundError
from workbench.index import IndexReader
from workbench.records import Principal, SourceView

if TYPE_CHECKING:
    from workbench.viewer import Original

MAX_CHUNK_ID = 2**63 - 1  # chunk ids are SQLite integers


class SourceViews:
    """Views of the current generation (``reader()``), audited in ``audit()``."""

    def __init__(self, reader: Callable[[], "IndexReader | None"], audit: Callable,
                 config: Callable = lambda: None) -> None:
        self.reader, self._audit_log, self.config = reader, audit, config  # config(): a share's [smb] account

    def _source(self, chunk_id: int, principal: Principal | None, action: str) -> tuple[SourceView, int]:
        """The view of a chunk ``principal`` may read; a refusal is audited as ``action`` ('refused')."""
        from workbench.access import can_read
        from workbench.viewer import source_view

        reader = self.reader()
        valid = isinstance(chunk_id, int) and 0 <= chunk_id <= MAX_CHUNK_ID
        chunks = reader.catalog.chunks([int(chunk_id)]) if reader and valid else []
        doc = reader.catalog.document(chunks[0].doc_id) if chunks else None
        if doc is None or not can_read(principal, doc):
            self._audit_refused(principal, action, f"source {str(chunk_id)[:40]}: " + (
                "not readable by this user" if doc else "no such source"), reader.generation if reader else 0,
                [chunk_id] if valid else [])
            raise NotFoundError(f"no source {str(chunk_id)[:40]} (it may have been re-indexed: ask again)")
        return source_view(reader.catalog, chunks[0], doc), reader.generation

    def _audit_source(self, principal, action: str, what: str, generation: int, chunk_id: int) -> None:
        self._audit_log().record(principal or OPERATOR, action, what, generation, [int(chunk_id)])

    def _audit_refused(self, principal, action: str, what: str, generation: int, chunk_ids: list[int]) -> None:
        self._audit_log().record(principal or OPERATOR, action, what, generation, chunk_ids,
                                 outcome="refused")

    def source(self, chunk_id: int, principal: Principal | None = None) -> SourceView:
        """The `SourceView` of a chunk: passage, surrounding text, document (audited as a ``view``).

        Raises NotFoundError when the chunk does not exist in the current generation or
        ``principal`` may not read its document (the two are not told apart).
        """
        view, generation = self._source(chunk_id, principal, "view")
        self._audit_source(principal, "view", view.document.display_path, generation, chunk_id)
        return view

    def page_image(self, chunk_id: int, principal: Principal | None = None, width_px: int = 1000,
                   wait_s: float | None = None) -> bytes:
        """PNG of the PDF page a chunk sits on (NotFoundError for other formats or no access); audited
        as a ``page``. Rendered in a bounded worker process (`workbench.viewer.render_pdf_page`)."""
        from workbench.viewer import RenderLimits, render_pdf_page

        view, generation = self._source(chunk_id, principal, "page")
        if not view.is_pdf:
            raise NotFoundError(f"source {chunk_id} has no page to show")
        with self._open_original(view, principal, "page", generation, chunk_id) as original:
            self._audit_source(principal, "page", f"{view.document.display_path} page {view.chunk.page}", generation,
                               chunk_id)
            limits = RenderLimits() if wait_s is None else RenderLimits(wait_s=wait_s)
            return render_pdf_page(original, view.chunk.page, width_px, limits=limits)

    def original_file(self, chunk_id: int, principal: Principal | None = None) -> "Original":
        """The indexed file a chunk came from, opened (an `workbench.viewer.Original`: read from it, then
        close it), only if it is still the file that was indexed (see `workbench.viewer.open_original`).
        NotFoundError when gone, changed, swapped or not readable; audited as a ``download``."""
        view, generation = self._source(chunk_id, principal, "download")
        original = self._open_original(view, principal, "download", generation, chunk_id)
        self._audit_source(principal, "download", view.document.path, generation, chunk_id)
        return original

    def _open_original(self, view: SourceView, principal, action: str, generation: int, chunk_id: int):
        from workbench.sources import opener_for
        from workbench.viewer import open_original

        try:
            return open_original(view.document, opener_for(view.document.path, self.config()))
        except NotFoundError as exc:
            self._audit_refused(principal, action, f"{view.document.path}: {exc}", generation, [chunk_id])
            raise

