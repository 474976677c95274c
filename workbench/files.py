"""Opening the files of a source so that what is read is what was checked.

Whoever can write into a watched folder can swap a file for a symbolic link (to anything the
service can read) between the moment it is listed and the moment it is read, or swap a folder on
its path. `open_no_links` opens a file without following a link in *any* part of its path (the
sources are stored as real paths, so none is expected), `open_checked` also wants a regular file
and, when given, the content hash recorded for it; the caller then reads, parses or serves from
that one descriptor. `file_hash` is the content hash the sync records (BLAKE2b-128 of the bytes).
A file refused raises `FileCheckError`, whose `FileCheck` kind says why (both in `workbench.errors`).
`private_dir` and `private_file` create the workbench's own folders and files for its user only.
Leaves out: deciding what to read (`workbench.sync`) and who may read it (`workbench.access`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

from workbench.errors import FileCheck, FileCheckError

BLOCK = 1 << 20
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600  # what the workbench writes is its user's alone


def private_dir(path: Path) -> None:
    """Create folder ``path`` (parents as usual) for this user only; an existing folder is kept as is."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 unless it exists (SQLite gives its -wal/-shm/-journal files
    the mode of the database, so they follow)."""
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, PRIVATE_FILE))
    return path


def open_no_links(path: str | os.PathLike, flags: int = os.O_RDONLY) -> int:
    """A descriptor of the file at the absolute ``path``, opened one path part at a time, none of them
    followed if it is a symbolic link. OSError (ELOOP for a link) otherwise; the caller closes it."""
    parts = Path(path).parts
    if not parts or parts[0] != "/":
        raise OSError(errno.EINVAL, "not an absolute path", str(path))
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[1:-1]:
            inner = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = inner
        return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)


def hash_of(fd: int) -> str:
    """BLAKE2b-128 (hex) of what ``fd`` holds from its current offset to its end."""
    h = hashlib.blake2b(digest_size=16)
    while block := os.read(fd, BLOCK):
        h.update(block)
    return h.hexdigest()


def file_hash(path: str | os.PathLike) -> str:
    """BLAKE2b-128 of the bytes of the file at ``path`` (not followed through symbolic links)."""
    fd = open_no_links(Path(path).absolute())
    try:
        return hash_of(fd)
    finally:
        os.close(fd)


def open_checked(path: str | os.PathLike, content_hash: str | None = None) -> int:
    """A read-only descriptor, at offset 0, of the regular file at ``path`` reached through no symbolic
    link; with ``content_hash``, only if the file's bytes still have that hash. FileCheckError (the
    reason) otherwise; the caller closes the descriptor."""
    try:
        fd = open_no_links(Path(path).absolute(), os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise FileCheckError(FileCheck.LINK, "its path leads through a symbolic link now (not followed)") from None
        kind = FileCheck.MISSING if exc.errno == errno.ENOENT else FileCheck.UNREADABLE
        raise FileCheckError(kind, f"cannot read file ({exc.strerror or exc})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileCheckError(FileCheck.NOT_REGULAR, "not a regular file (not read)")
        os.set_blocking(fd, True)
        if content_hash is not None:
            if hash_of(fd) != content_hash:
                raise FileCheckError(FileCheck.CHANGED, "its content is not what was listed (changed since); it is read again at "
                                     "the next sync")
            os.lseek(fd, 0, os.SEEK_SET)
        return fd
    except BaseException:
        os.close(fd)
        raise
