"""The audit log: who asked what, when, and which chunks of which index generation grounded it.

Entries go to ``<index>/audit.sqlite`` (append-only from the workbench's side). `Workbench.ask`
records every answer (refusals too); searches and source views are recorded when made for a
signed-in user. Leaves out: retention (prune with SQLite tools) and shipping logs elsewhere.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from workbench.records import _Record
from workbench.sidecar import sidecar

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at REAL NOT NULL,
  user TEXT NOT NULL,
  action TEXT NOT NULL,
  text TEXT NOT NULL,
  generation INTEGER NOT NULL,
  chunk_ids TEXT NOT NULL,
  refused INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True, slots=True)
class AuditEntry(_Record):
    """One audited action: ``ask``, ``search``, ``view`` (source viewer) or ``download``."""

    id: int
    at: float
    user: str
    action: str
    text: str
    generation: int
    chunk_ids: tuple[int, ...]
    refused: bool

    def __str__(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.at))
        return (f"{when}\t{self.user}\t{self.action}\tgen {self.generation}\t"
                f"{','.join(map(str, self.chunk_ids)) or '-'}{' (refused)' if self.refused else ''}\t{self.text}")


class AuditLog:
    def __init__(self, index_dir: str | Path) -> None:
        self.path = Path(index_dir) / "audit.sqlite"

    def _connect(self):
        return sidecar(self.path, _SCHEMA)

    def record(self, user: str, action: str, text: str, generation: int, chunk_ids=(), refused: bool = False) -> None:
        with self._connect() as conn:
            conn.execute("INSERT INTO audit (at, user, action, text, generation, chunk_ids, refused) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (time.time(), user, action, text[:4000], int(generation), json.dumps([int(i) for i in chunk_ids]),
                          int(refused)))

    def entries(self, user: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` entries (of ``user``), newest first."""
        if not self.path.exists():
            return []
        sql = "SELECT id, at, user, action, text, generation, chunk_ids, refused FROM audit"
        params: list = []
        if user:
            sql += " WHERE user=?"
            params.append(user)
        with self._connect() as conn:
            rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], tuple(json.loads(r[6])), bool(r[7])) for r in rows]
