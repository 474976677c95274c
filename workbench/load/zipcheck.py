"""Zip-container checks for OOXML files: which format it is, and whether it is a zip bomb.

Reads only the zip's central directory (sizes are declared there); the later decompression is
still bounded by the sandbox's memory limit in case a member lies about its size.
"""

from __future__ import annotations

import io
import zipfile

from workbench.errors import ParseError

_MARKERS = {"word/document.xml": "docx", "ppt/presentation.xml": "pptx", "xl/workbook.xml": "xlsx"}
MAX_RATIO = 200  # uncompressed / compressed for one member; real OOXML stays far below


def _open(data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ParseError(f"corrupt zip container ({exc})") from None


def ooxml_kind(data: bytes) -> str | None:
    """'docx', 'pptx' or 'xlsx' from the parts inside the zip; None for another zip."""
    names = set(_open(data).namelist())
    for marker, kind in _MARKERS.items():
        if marker in names:
            return kind
    return None


def check_zip(data: bytes, max_unzipped_mb: float) -> None:
    """Raise ParseError when the declared expansion is over the limit or absurdly compressed."""
    total = 0
    for info in _open(data).infolist():
        total += info.file_size
        if info.compress_size and info.file_size / info.compress_size > MAX_RATIO and info.file_size > 10 << 20:
            raise ParseError(
                f"zip bomb suspected: {info.filename} expands {info.file_size // info.compress_size}x "
                f"to {info.file_size / 2**20:.0f} MB"
            )
    if total > max_unzipped_mb * 2**20:
        raise ParseError(
            f"expands to {total / 2**20:.0f} MB, over the {max_unzipped_mb:g} MB limit "
            "(ingest.max_unzipped_mb)"
        )
