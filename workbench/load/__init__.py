"""Loaders: bytes of one file in, `ParsedDocument`s out, chosen by suffix and checked by content.

`parse_bytes` is the single entry point. It sniffs the content (a PDF named .docx is read as a
PDF; binary junk named .txt is refused) and dispatches to one small module per format family,
each importing its parser lazily. Loaders raise `ParseError` with a reason a user can act on.
This package does no file-system walking and no isolation: `workbench.load.sandbox` runs it in
bounded worker processes.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import PurePath

from workbench.errors import ParseError
from workbench.records import ParsedDocument

SUFFIXES: dict[str, str] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".pptx": "pptx",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".csv": "csv",
    ".tsv": "csv",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
    ".log": "text",
    ".eml": "email",
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
    ".tif": "image",
    ".tiff": "image",
}
OOXML_FORMATS = ("docx", "pptx", "xlsx")
_LOADERS: dict[str, tuple[str, str]] = {  # format -> (module in this package, function)
    "pdf": ("pdf", "load_pdf"),
    "docx": ("office", "load_docx"),
    "pptx": ("office", "load_pptx"),
    "xlsx": ("sheets", "load_xlsx"),
    "csv": ("sheets", "load_csv"),
    "html": ("web", "load_html"),
    "markdown": ("web", "load_markdown"),
    "text": ("text", "load_text"),
    "image": ("image", "load_image"),
}
_TAKE_LIMITS = ("pdf", "image")  # loaders that read pages by OCR


@dataclass(frozen=True, slots=True)
class LoadLimits:
    """Bounds a loader enforces itself (time and memory are bounded by the sandbox)."""

    max_unzipped_mb: float = 512.0
    ocr_languages: str = ""  # tesseract languages ("eng+spa"); "" = no OCR
    ocr_page_timeout_s: float = 60.0
    ocr_max_pixels: int = 60_000_000
    ocr_min_chars: int = 40
    ocr_file_timeout_s: float = 3600.0
    ocr_max_pages: int = 500
    pdf_tables: bool = True  # ruled tables in PDFs as rows with their headers

    @classmethod
    def from_settings(cls, ingest, ocr) -> "LoadLimits":
        """The limits ``[ingest]`` and ``[ocr]`` ask for."""
        return cls(max_unzipped_mb=ingest.max_unzipped_mb, ocr_languages=ocr.languages if ocr.enabled else "",
                   ocr_page_timeout_s=ocr.page_timeout_s, ocr_max_pixels=ocr.max_pixels,
                   ocr_min_chars=ocr.min_chars, ocr_file_timeout_s=ocr.file_timeout_s,
                   ocr_max_pages=ocr.max_pages, pdf_tables=ingest.pdf_tables)


def format_for(name: str) -> str | None:
    """The format a file name's suffix claims, or None when unsupported."""
    return SUFFIXES.get(PurePath(name).suffix.lower())


def supported_suffixes() -> str:
    return ", ".join(sorted(SUFFIXES))


def _sniff(data: bytes, claimed: str) -> str:
    """The format the content really has, given the one its name claims."""
    from workbench.load.zipcheck import ooxml_kind

    head = data[:1024]
    if b"%PDF-" in head:
        return "pdf"
    if claimed == "image" or head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")):
        return "image"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        raise ParseError(
            "encrypted (password-protected) or legacy binary Office file; save it as "
            ".docx/.xlsx/.pptx without a password and ingest again"
        )
    if head.startswith(b"PK\x03\x04"):
        kind = ooxml_kind(data)
        if kind is None:
            raise ParseError(f"a zip archive, not a {claimed.upper()} document")
        return kind
    if claimed in ("pdf", *OOXML_FORMATS):
        raise ParseError(f"not a valid {claimed.upper()} file: the content does not start like one")
    return claimed


def parse_bytes(data: bytes, name: str, limits: LoadLimits = LoadLimits()) -> list[ParsedDocument]:
    """Parse one file's bytes. Returns the document and, for e-mail, one per attachment.

    Raises ParseError for unsupported, corrupt, encrypted, empty or binary-junk input.
    """
    claimed = format_for(name)
    if claimed is None:
        raise ParseError(f"unsupported file type (supported: {supported_suffixes()})")
    if not data:
        raise ParseError("empty file (0 bytes)")
    fmt = _sniff(data, claimed)
    stem = PurePath(name).stem
    if fmt in OOXML_FORMATS:
        from workbench.load.zipcheck import check_zip

        check_zip(data, limits.max_unzipped_mb)
    if fmt == "email":
        from workbench.load.email import load_email

        docs = load_email(data, stem, limits)
    else:
        module_name, func_name = _LOADERS[fmt]
        module = importlib.import_module(f"workbench.load.{module_name}")
        loader = getattr(module, func_name)
        docs = [loader(data, stem, limits) if fmt in _TAKE_LIMITS else loader(data, stem)]
    main = docs[0]
    if not main.blocks and fmt != "email":
        hint = " (a scanned PDF: OCR is off, [ocr] enabled)" if fmt == "pdf" and not limits.ocr_languages else ""
        raise ParseError(f"no extractable text{hint}")
    return docs
