"""Files uploaded through the web app: safe names, size and type checks, one folder per collection.

Uploads land in ``<index>/uploads/<collection>/`` and nowhere else: the name a browser sends is
reduced to its last path component, normalised (NFKC), stripped of control and separator
characters, of the glob characters ``* ? [ ]`` (its name goes into the folder's access file) and of
leading dots, and shortened. That folder is then ingested like any source, so
re-uploading a file of the same name replaces the old version (`Workbench.upload` parses the new
version first, in a private staging folder, and keeps the old one when the new one cannot be read).
Leaves out: virus scanning.
"""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
from pathlib import Path, PurePosixPath, PureWindowsPath

from workbench.errors import UploadRefusedError, WorkbenchError
from workbench.load import format_for, supported_suffixes
from workbench.files import private_dir

MAX_NAME = 120


def safe_filename(name: str) -> str:
    """A harmless file name made from ``name`` (never a path, never hidden, never empty)."""
    base = PureWindowsPath(PurePosixPath(name or "").name).name  # drop any '/' or '\\' path part
    base = unicodedata.normalize("NFKC", base)
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] not in "CZ" or ch == " ")
    base = re.sub(r'[<>:"/\\|?*\[\]]', "_", base).strip().lstrip(".").strip()  # no glob characters either
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = stem[: MAX_NAME - len(suffix) - 1] or "upload"
    return f"{stem}.{suffix}" if suffix else stem


def upload_dir(index_dir: str | Path, collection: str) -> Path:
    """``<index>/uploads/<collection>``; WorkbenchError when the name would lead anywhere else."""
    base = (Path(index_dir) / "uploads").resolve()
    folder = (base / collection).resolve()
    if folder.parent != base or not collection.replace("-", "").replace("_", "").isalnum():
        raise WorkbenchError(f"collection name {collection!r}: use letters, digits, '-' and '_'")
    return folder


def check_upload(source: str | Path, name: str, max_mb: float) -> str:
    """The safe file name for uploaded ``source`` sent as ``name``; UploadRefusedError (type not
    supported, file too large) otherwise. Reads only the file's size."""
    clean = safe_filename(name)
    if format_for(clean) is None:
        raise UploadRefusedError(clean, f"file type not supported (supported: {supported_suffixes()})")
    size = Path(source).stat().st_size
    if size > max_mb * 2**20:
        raise UploadRefusedError(clean, f"{size / 2**20:.1f} MB is over the {max_mb:g} MB upload limit")
    return clean


def place_upload(folder: Path, source: str | Path, clean: str, move: bool = False) -> Path:
    """Copy (or move) ``source`` into ``folder`` as ``clean`` atomically; never outside ``folder``.
    New folders are 0700 and the file 0600, like the rest of the index."""
    private_dir(folder.parent)
    private_dir(folder)
    target = folder / clean
    if target.resolve().parent != folder.resolve():  # belt and braces: never outside the folder
        raise UploadRefusedError(clean, "not a usable file name")
    tmp = folder / f".{clean}.part"
    if move:
        shutil.move(str(source), tmp)
    else:
        shutil.copyfile(source, tmp)
    os.chmod(tmp, 0o600)
    tmp.replace(target)
    return target


def store_upload(index_dir: str | Path, collection: str, source: str | Path, name: str, max_mb: float) -> Path:
    """Copy the uploaded temp file ``source`` into the collection's upload folder as ``name``.

    Raises UploadRefusedError (type not supported, file too large) without writing anything.
    """
    folder = upload_dir(index_dir, collection)
    return place_upload(folder, source, check_upload(source, name, max_mb))


def upload_outcomes(names, report, refused) -> list[tuple[str, str, str]]:
    """(display name, 'indexed' | 'unchanged' | 'failed', reason) for each uploaded file, from
    `Workbench.upload`'s report and refusals (the report names files by their stored, safe names)."""
    done = {Path(p).name for p in (*report.added, *report.changed)}
    failed = {Path(f.path).name: f.reason for f in (*report.failed, *refused)}
    out = []
    for name in names:
        safe = safe_filename(name)
        if safe in failed or name in failed:
            out.append((name, "failed", failed.get(safe) or failed.get(name, "")))
        elif safe in done:
            out.append((name, "indexed", ""))
        else:
            out.append((name, "unchanged", "same content as before"))
    return out
