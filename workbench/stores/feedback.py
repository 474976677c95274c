"""Thumbs up/down on answers, kept in ``<index>/feedback.sqlite`` for later review.

Each entry stores who rated, the question, the answer text, its citations (as JSON), the index
generation that grounded it, the rating and an optional comment. Leaves out: editing or deleting
entries (reviewers read them; SQLite tools can prune).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import InvalidInputError
from workbench.records import Answer, _Record
from workbench.stores.sidecar import sidecar

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  created_at REAL NOT NULL,
  user TEXT NOT NULL,
  rating INTEGER NOT NULL,
  comment TEXT NOT NULL DEFAULT '',
  question TEXT NOT NULL,
  answer TEXT NOT NULL,
  citations TEXT NOT NULL,
  generation INTEGER NOT NULL,
  refused INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True, slots=True)
class Feedback(_Record):
    """One rating of one answer (``rating`` is +1 or -1; ``citations`` as plain dicts)."""

    id: int
    created_at: float
    user: str
    rating: int
    comment: str
    question: str
    answer: str
    citations: tuple[dict, ...]
    generation: int
    refused: bool


class FeedbackStore:
    """Append and list feedback entries."""

    def __init__(self, index_dir: str | Path) -> None:
        self.path = Path(index_dir) / "feedback.sqlite"

    def _connect(self):
        return sidecar(self.path, _SCHEMA)

    def add(self, user: str, answer: Answer, rating: int, comment: str = "") -> int:
        """Store a rating (+1 helpful, -1 not helpful) of ``answer``; returns the entry's id."""
        if rating not in (1, -1):
            raise InvalidInputError(f"rating {rating!r}: use +1 (helpful) or -1 (not helpful)")
        cited = [c.to_dict() for c in answer.cited]
        with self._connect() as conn:
            cur = conn.execute(
                "INSERT INTO feedback (created_at, user, rating, comment, question, answer, citations, generation,"
                " refused) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time(), user, rating, comment.strip()[:2000], answer.question, answer.text,
                 json.dumps(cited), answer.generation, int(answer.refused)))
            return int(cur.lastrowid)

    def list(self, limit: int = 200) -> list[Feedback]:
        """The newest ``limit`` entries, newest first."""
        if not self.path.exists():
            return []
        with self._connect() as conn:
            rows = conn.execute("SELECT id, created_at, user, rating, comment, question, answer, citations,"
                                " generation, refused FROM feedback ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [Feedback(r[0], r[1], r[2], r[3], r[4], r[5], r[6], tuple(json.loads(r[7])), r[8], bool(r[9]))
                for r in rows]
