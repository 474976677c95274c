"""Staff accounts: names, groups and argon2id password hashes in ``<index>/users.sqlite``.

The store lives beside the index generations (not inside one), so re-indexing never touches it.
`UserStore.verify` checks a password in constant work whether or not the user exists. Every change
of password or groups moves the user's ``changed_at``, which ends their open sessions
(`workbench_web.sessions`). Leaves out: password policy beyond a minimum length, failed-login delays
(`workbench_web.sessions.LoginThrottle`), and document permissions (`workbench.access`).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from workbench.errors import InvalidInputError, NotFoundError, WorkbenchError
from workbench.access import NAME_RE, check_name, parse_groups  # noqa: F401 (re-exported)
from workbench.records import _Record
from workbench.stores.sidecar import sidecar

MIN_PASSWORD = 8
_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
  name TEXT PRIMARY KEY,
  groups TEXT NOT NULL DEFAULT '',
  password_hash TEXT NOT NULL,
  created_at REAL NOT NULL,
  updated_at REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class User(_Record):
    """A staff account (never carries the password hash)."""

    name: str
    groups: tuple[str, ...]
    created_at: float
    changed_at: float = 0.0  # last change of password or groups (sessions older than that end)

    def __str__(self) -> str:
        return f"{self.name}\t{','.join(self.groups) or '-'}"


class UserStore:
    """Add, list, remove and verify users in ``<index_dir>/users.sqlite``."""

    def __init__(self, index_dir: str | Path) -> None:
        self.path = Path(index_dir) / "users.sqlite"
        self._hasher = PasswordHasher()  # argon2id, library defaults (RFC 9106 low-memory profile)
        self._dummy = self._hasher.hash("not a real password")

    def _connect(self):
        return sidecar(self.path, _SCHEMA, wal=True)

    def add(self, name: str, password: str, groups=()) -> User:
        """Create ``name``; WorkbenchError when it exists or the password is shorter than 8 characters."""
        check_name(name)
        self._check_password(password)
        now = time.time()
        with self._connect() as conn:
            try:
                conn.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?)",
                             (name, ",".join(parse_groups(groups)), self._hasher.hash(password), now, now))
            except sqlite3.IntegrityError:
                raise WorkbenchError(f"user {name!r} already exists: use `workbench users passwd {name}` "
                                     "to change the password or `users groups` to change groups") from None
        return self.get(name)

    def set_password(self, name: str, password: str) -> None:
        """Set a new password; the user's open sessions end."""
        self._check_password(password)
        with self._connect() as conn:
            cur = conn.execute("UPDATE users SET password_hash=?, updated_at=max(?, updated_at + 1e-6) WHERE name=?",
                               (self._hasher.hash(password), time.time(), name))
        if cur.rowcount == 0:
            raise NotFoundError(f"no user {name!r}: see `workbench users list`")

    def set_groups(self, name: str, groups) -> User:
        """Replace the user's groups; their open sessions end (they sign in again with the new rights)."""
        with self._connect() as conn:
            cur = conn.execute("UPDATE users SET groups=?, updated_at=max(?, updated_at + 1e-6) WHERE name=?",
                               (",".join(parse_groups(groups)), time.time(), name))
        if cur.rowcount == 0:
            raise NotFoundError(f"no user {name!r}: see `workbench users list`")
        return self.get(name)

    def remove(self, name: str) -> None:
        with self._connect() as conn:
            cur = conn.execute("DELETE FROM users WHERE name=?", (name,))
        if cur.rowcount == 0:
            raise NotFoundError(f"no user {name!r}: see `workbench users list`")

    def get(self, name: str | None) -> User | None:
        if not name or not self.path.exists():
            return None
        with self._connect() as conn:
            row = conn.execute("SELECT name, groups, created_at, updated_at FROM users WHERE name=?",
                               (name,)).fetchone()
        return User(row[0], parse_groups(row[1]), row[2], row[3]) if row else None

    def list(self) -> list[User]:
        if not self.path.exists():
            return []
        with self._connect() as conn:
            rows = conn.execute("SELECT name, groups, created_at, updated_at FROM users ORDER BY name").fetchall()
        return [User(r[0], parse_groups(r[1]), r[2], r[3]) for r in rows]

    def verify(self, name: str, password: str) -> User | None:
        """The user when ``password`` is right, else None (same argon2 work for unknown names).

        CPU-heavy (tens of milliseconds): servers call it off their event loop, behind a bound.
        """
        row = None
        if NAME_RE.match(name or "") and self.path.exists():
            with self._connect() as conn:
                row = conn.execute("SELECT password_hash FROM users WHERE name=?", (name,)).fetchone()
        try:
            ok = self._hasher.verify(row[0] if row else self._dummy, password or "") and row is not None
        except (VerificationError, InvalidHashError):
            ok = False
        return self.get(name) if ok else None

    @staticmethod
    def _check_password(password: str) -> None:
        if len(password or "") < MIN_PASSWORD:
            raise InvalidInputError(f"password too short: use at least {MIN_PASSWORD} characters")
