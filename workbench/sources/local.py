"""A folder (or a single file) on this machine as a source: the first `Source`.

Files are listed with `os.walk` (links never followed, hidden files and folders left out unless
asked), hashed and opened through `workbench.files` (no link in any part of the path, only the
planned bytes), and their readers come from the collection's access files and default groups
(`workbench.access.AccessRules`). Leaves out: the sync's plan and parsing.
"""

from __future__ import annotations

import os
from pathlib import Path

from workbench.access import AccessRules
from workbench.files import file_hash, open_checked
from workbench.load import format_for, supported_suffixes
from workbench.records import FailureKind, FileFailure, FileInfo


class LocalFolder:
    """A folder or file under ``root`` in ``collection``, readable as ``rules`` say."""

    def __init__(self, root: str | os.PathLike, collection: str, rules: AccessRules) -> None:
        self.path = Path(root)
        self.root = str(root)
        self.collection = collection
        self.rules = rules

    @property
    def permissions(self) -> str:
        """Where its readers come from, in words (for `workbench status`)."""
        if self.rules.permissions_from in ("native", "posix"):
            return "POSIX owner, group, mode and ACLs (access files override)"
        default = self.rules.default
        return "access files" + (f", else {', '.join(default)}" if default else ", else admins only")

    def exists(self) -> bool:
        return self.path.exists()

    def scan(self, include_hidden: bool = False) -> tuple[list[FileInfo], list[FileFailure]]:
        return scan(self.path, include_hidden)

    def content_hash(self, path: str) -> str:
        return file_hash(path)

    def open(self, path: str, content_hash: str | None = None) -> int:
        return open_checked(path, content_hash)

    def groups_for(self, path: str) -> tuple[str, ...]:
        return self.rules.groups_for(path)


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("~$")


def scan(root: Path, include_hidden: bool = False) -> tuple[list[FileInfo], list[FileFailure]]:
    """Supported files under ``root`` (or ``root`` itself), and the files skipped with a reason."""
    files: list[FileInfo] = []
    skipped: list[FileFailure] = []
    if root.is_file():
        candidates = [root]
    else:
        candidates = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if include_hidden or not _hidden(d))
            candidates += [Path(dirpath) / f for f in sorted(filenames) if include_hidden or not _hidden(f)]
    for path in candidates:
        if path.is_symlink():
            skipped.append(FileFailure(str(path), "symbolic link (not followed)", kind=FailureKind.SYMLINK))
            continue
        if format_for(path.name) is None:
            skipped.append(FileFailure(str(path), f"unsupported file type (supported: {supported_suffixes()})",
                                       kind=FailureKind.UNSUPPORTED))
            continue
        try:
            st = path.stat()
        except OSError as exc:
            skipped.append(FileFailure(str(path), f"cannot read file ({exc.strerror})", kind=FailureKind.UNREADABLE))
            continue
        files.append(FileInfo(str(path), st.st_size, st.st_mtime))
    return files, skipped


