"""The index folder's layout: where generations live, which one is published, and atomic writes.

Layout::

    INDEX/CURRENT                   the published generation number (replaced atomically)
    INDEX/gen/000007/catalog.sqlite the catalog of generation 7 (never modified once published)
    INDEX/gen/000007/vectors.faiss  its vectors (faiss.write_index; IndexIDMap2 keyed by chunk id)
    INDEX/gen/000007/search.faiss   the IVF index searching them, when [index] kind asks for one
    INDEX/gen/000007/lexical/       BM25 matrices answering lexical queries, when [index] lexical asks
    INDEX/gen/000008.partial/       a generation being built (removed if its writer died)
    INDEX/embeddings.sqlite         embedding cache keyed by (model, text hash), shared by all
    INDEX/lock                      flock held by the one writer

A writer copies the current generation, changes the copy, then publishes it with a rename and an
atomic replace of CURRENT. A reader opens whatever CURRENT names, so it always sees a complete
index, and a process killed at any moment leaves the last published generation intact. Folders
the workbench creates here are 0700 and files 0600 (the service user's alone), whatever the umask.
Reading a generation is `workbench.index.reader`'s, writing the next one `workbench.index.writer`'s.
Leaves out: deciding what changes (`workbench.sync`) and search ranking (`workbench.retrieve`).
"""

from __future__ import annotations

import os
from pathlib import Path

from workbench.errors import IndexMismatchError
from workbench.files import PRIVATE_FILE
from workbench.index.catalog import SCHEMA_VERSION


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new or truncated 0600 file and fsync it."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE), "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def current_generation(root: Path) -> int | None:
    """The published generation number, or None when nothing was published yet."""
    try:
        return int((root / "CURRENT").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def gen_dir(root: Path, generation: int) -> Path:
    return root / "gen" / f"{generation:06d}"


def check_schema(root: Path, meta: dict[str, str]) -> None:
    """Raise IndexMismatchError for an index written in another catalog format."""
    if meta.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise IndexMismatchError(
            f"{root} uses catalog format {meta['schema_version']}; this workbench reads format {SCHEMA_VERSION}. "
            "Ingest your sources into a new --index folder"
        )
