"""The audit log: who asked what, when, and which chunks of which index generation grounded it.

Entries go to ``<index>/audit.sqlite``. `Workbench.ask` records each question with the chunks that
ground it right after retrieval, before a word is generated (no record, no answer), then marks the
entry answered or refused; a reader who closes the page mid-answer leaves an ``asked`` entry.
Searches made for a user, source views, page images, downloads, uploads, re-indexes and sign-ins
(failed ones too) are recorded. `AuditEntry.__str__` escapes control characters, so a question
holding terminal escapes cannot rewrite the screen of whoever reads the log. Leaves out: retention
(prune with SQLite tools), tamper evidence and shipping logs elsewhere.
"""

from __future__ import annotations

import json
import sqlite3
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from workbench.records import _Record
from workbench.stores.sidecar import sidecar

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at REAL NOT NULL,
  user TEXT NOT NULL,
  action TEXT NOT NULL,
  text TEXT NOT NULL,
  generation INTEGER NOT NULL,
  chunk_ids TEXT NOT NULL,
  refused INTEGER NOT NULL DEFAULT 0,
  outcome TEXT NOT NULL DEFAULT '',
  source TEXT NOT NULL DEFAULT '',
  subject TEXT NOT NULL DEFAULT '',
  groups TEXT NOT NULL DEFAULT ''
);
"""
_ADDED = {"outcome": "ALTER TABLE audit ADD COLUMN outcome TEXT NOT NULL DEFAULT ''",  # columns of later versions
          "source": "ALTER TABLE audit ADD COLUMN source TEXT NOT NULL DEFAULT ''",
          "subject": "ALTER TABLE audit ADD COLUMN subject TEXT NOT NULL DEFAULT ''",
          "groups": "ALTER TABLE audit ADD COLUMN groups TEXT NOT NULL DEFAULT ''"}
_COLUMNS = "id, at, user, action, text, generation, chunk_ids, refused, outcome, source, subject, groups"


def printable(text: str) -> str:
    """``text`` with control, format (bidi) and line-break characters shown as escapes (\\x1b, \\u202e)."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class AuditEntry(_Record):
    """One audited action: ``ask``, ``search``, ``view`` (source viewer), ``page`` (page image),
    ``download``, ``upload``, ``reindex``, ``login`` or ``login-failed``. ``outcome``: for ``ask``,
    ``asked`` (retrieval done, answer not finished), ``answered`` or ``refused``."""

    id: int
    at: float
    user: str
    action: str
    text: str
    generation: int
    chunk_ids: tuple[int, ...]
    refused: bool
    outcome: str = ""
    source: str = ""  # where the user's identity came from: "local", "ldap", "oidc" ("" : not recorded)
    subject: str = ""  # the directory's id for the user (LDAP DN, OpenID sub)
    groups: tuple[str, ...] = ()  # the groups the action was allowed with

    def __str__(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.at))
        shown = {"refused": " (refused)", "asked": " (unfinished)"}.get(self.outcome, " (refused)" if self.refused else "")
        via = f" [{self.source}]" if self.source and self.source != "local" else ""
        return (f"{when}\t{printable(self.user)}{via}\t{self.action}\tgen {self.generation}\t"
                f"{','.join(map(str, self.chunk_ids)) or '-'}{shown}\t{printable(self.text)}")


class AuditLog:
    def __init__(self, index_dir: str | Path) -> None:
        self.path = Path(index_dir) / "audit.sqlite"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with sidecar(self.path, _SCHEMA) as conn:
            have = {r[1] for r in conn.execute("PRAGMA table_info(audit)")}
            for column, sql in _ADDED.items():  # a log written by an earlier version
                if column not in have:
                    conn.execute(sql)
            yield conn

    def record(self, user, action: str, text: str, generation: int | None = 0, chunk_ids=(),
               refused: bool = False, outcome: str = "") -> int:
        """Append an entry; its id. ``user`` is a name or a `workbench.records.Principal` (then its
        identity source, subject and groups are recorded too). Raises (sqlite3 / OS errors) when it
        cannot be written."""
        name = getattr(user, "name", user)
        source, subject = getattr(user, "source", ""), getattr(user, "subject", "")
        groups = ",".join(getattr(user, "groups", ()))
        with self._connect() as conn:
            cur = conn.execute(
                "INSERT INTO audit (at, user, action, text, generation, chunk_ids, refused, outcome, source, subject, "
                "groups) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time(), name[:200], action, text[:4000], int(generation or 0),
                 json.dumps([int(i) for i in chunk_ids]), int(refused or outcome == "refused"), outcome,
                 source[:40], subject[:400], groups[:2000]))
            return int(cur.lastrowid)

    def finish(self, entry_id: int, outcome: str, chunk_ids=None, text: str | None = None,
               generation: int | None = None) -> None:
        """Set the outcome of entry ``entry_id`` (and the chunks finally used, its text or its
        generation, when given)."""
        with self._connect() as conn:
            conn.execute("UPDATE audit SET outcome=?, refused=?, chunk_ids=coalesce(?, chunk_ids), "
                         "text=coalesce(?, text), generation=coalesce(?, generation) WHERE id=?",
                         (outcome, int(outcome == "refused"),
                          None if chunk_ids is None else json.dumps([int(i) for i in chunk_ids]),
                          None if text is None else text[:4000], generation, entry_id))

    def entries(self, user: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` entries (of ``user``), newest first."""
        if not self.path.exists():
            return []
        sql = f"SELECT {_COLUMNS} FROM audit"
        params: list = []
        if user:
            sql += " WHERE user=?"
            params.append(user)
        with self._connect() as conn:
            rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], tuple(json.loads(r[6])), bool(r[7]), r[8], r[9], r[10],
                           tuple(g for g in r[11].split(",") if g)) for r in rows]
