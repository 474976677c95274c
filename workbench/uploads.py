"""Files uploaded through the web app: safe names, size and type checks, one folder per collection.

Uploads land in ``<index>/uploads/<collection>/`` and nowhere else: the name a browser sends is
reduced to its last path component, normalised (NFKC), stripped of control and separator
characters and of leading dots, and shortened. That folder is then ingested like any source, so
re-uploading a file of the same name replaces the old version. Leaves out: virus scanning.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
from pathlib import Path, PurePosixPath, PureWindowsPath

from workbench.errors import WorkbenchError
from workbench.load import format_for, supported_suffixes

MAX_NAME = 120


def safe_filename(name: str) -> str:
    """A harmless file name made from ``name`` (never a path, never hidden, never empty)."""
    base = PureWindowsPath(PurePosixPath(name or "").name).name  # drop any '/' or '\\' path part
    base = unicodedata.normalize("NFKC", base)
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] not in "CZ" or ch == " ")
    base = re.sub(r'[<>:"/\\|?*]', "_", base).strip().lstrip(".").strip()
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


def store_upload(index_dir: str | Path, collection: str, source: str | Path, name: str, max_mb: float) -> Path:
    """Copy the uploaded temp file ``source`` into the collection's upload folder as ``name``.

    Raises WorkbenchError (type not supported, file too large) without writing anything.
    """
    clean = safe_filename(name)
    folder = upload_dir(index_dir, collection)
    if format_for(clean) is None:
        raise WorkbenchError(f"{clean}: file type not supported (supported: {supported_suffixes()})")
    size = Path(source).stat().st_size
    if size > max_mb * 2**20:
        raise WorkbenchError(f"{clean}: {size / 2**20:.1f} MB is over the {max_mb:g} MB upload limit")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / clean
    if target.resolve().parent != folder.resolve():  # belt and braces: never outside the folder
        raise WorkbenchError(f"{name!r}: not a usable file name")
    tmp = folder / f".{clean}.part"
    shutil.copyfile(source, tmp)
    tmp.replace(target)
    return target


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
