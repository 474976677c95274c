"""Small SQLite files kept beside the index generations (users, feedback, audit log).

`sidecar` opens one, creates its schema if needed, runs the caller's statements in one
transaction and closes the connection. A new file is private to the service user (0600, and 0700
for the index folder when it creates it), like the rest of the index (`workbench.index`).
Leaves out: the index catalog itself (`workbench.index.catalog`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workbench.files import private_dir, private_file


@contextmanager
def sidecar(path: Path, schema: str, wal: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection to ``path`` (created with ``schema``), committed on success and always closed."""
    private_dir(path.parent)
    conn = sqlite3.connect(private_file(path), timeout=10)
    try:
        if wal:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(schema)
        with conn:
            yield conn
    finally:
        conn.close()
