"""The embedding cache: vectors by (model, text hash) in ``INDEX/embeddings.sqlite``, shared by
every generation, so unchanged text is never embedded twice. Leaves out: which texts need a
vector (`workbench.ingest`) and the generations themselves.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from workbench.files import private_file


class EmbeddingCache:
    """Vectors by (model, text hash), committed per batch so a killed run keeps its work.

    WAL with synchronous=NORMAL: a commit is not an fsync (an fsync per batch showed up as I/O
    wait while embedding); a power cut may lose the last batches of the cache, never corrupt it,
    and a lost vector is only computed again."""

    def __init__(self, path: Path, model: str) -> None:
        self.conn = sqlite3.connect(private_file(path))
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("""CREATE TABLE IF NOT EXISTS embeddings (model TEXT NOT NULL, text_hash TEXT NOT NULL,
            vector BLOB NOT NULL, PRIMARY KEY (model, text_hash)) WITHOUT ROWID""")
        self.model = model

    def get(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for i in range(0, len(hashes), 500):
            batch = list(hashes[i : i + 500])
            rows = self.conn.execute(
                f"SELECT text_hash, vector FROM embeddings WHERE model=? AND text_hash IN ({','.join('?' * len(batch))})",
                [self.model, *batch])
            found.update({h: np.frombuffer(v, dtype=np.float32) for h, v in rows})
        return found

    def put(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
                              [(self.model, h, v.astype(np.float32).tobytes()) for h, v in zip(hashes, vectors)])
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()
