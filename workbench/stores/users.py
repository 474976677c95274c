"""Staff accounts: names, groups and argon2id password hashes in ``<index>/users.sqlite``.

The store lives beside the index generations (not inside one), so re-indexing never touches it.
`UserStore.verify` checks a password in constant work whether or not the user exists. Every change
of password or groups moves the user's ``changed_at``, which ends their open sessions
(`workbench_web.sessions`). Users from the organization's directory (``source`` "ldap" or "oidc")
are written here at sign-in by `workbench.services.accounts` with no password; their groups follow
the directory (`refresh_groups` changes them without ending sessions: the next request already uses
the new rights), and a local account's name can never be taken over by a directory user. Leaves out: password policy beyond a minimum length, failed-login delays
(`workbench_web.sessions.LoginThrottle`), and document permissions (`workbench.access`).
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
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
  updated_at REAL NOT NULL,
  source TEXT NOT NULL DEFAULT 'local',
  subject TEXT NOT NULL DEFAULT ''
);
"""
_MIGRATE = ("ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT 'local'",
            "ALTER TABLE users ADD COLUMN subject TEXT NOT NULL DEFAULT ''")
_COLUMNS = "name, groups, created_at, updated_at, source, subject"


@dataclass(frozen=True, slots=True)
class User(_Record):
    """A staff account (never carries the password hash)."""

    name: str
    groups: tuple[str, ...]
    created_at: float
    changed_at: float = 0.0  # last change of password or groups (sessions older than that end)
    source: str = "local"  # "local" (password here), "ldap" or "oidc" (the directory signs them in)
    subject: str = ""  # the directory's id for them: an LDAP DN, an OpenID ``sub``

    def __str__(self) -> str:
        return f"{self.name}\t{','.join(self.groups) or '-'}\t{self.source}"


class UserStore:
    """Add, list, remove and verify users in ``<index_dir>/users.sqlite``."""

    def __init__(self, index_dir: str | Path) -> None:
        self.path = Path(index_dir) / "users.sqlite"
        self._hasher = PasswordHasher()  # argon2id, library defaults (RFC 9106 low-memory profile)
        self._dummy = self._hasher.hash("not a real password")

    @contextmanager
    def _connect(self):
        with sidecar(self.path, _SCHEMA, wal=True) as conn:
            have = {r[1] for r in conn.execute("PRAGMA table_info(users)")}
            if "source" not in have:  # a store written before directory users existed
                for sql in _MIGRATE:
                    conn.execute(sql)
            yield conn

    def add(self, name: str, password: str, groups=()) -> User:
        """Create ``name``; WorkbenchError when it exists or the password is shorter than 8 characters."""
        check_name(name)
        self._check_password(password)
        now = time.time()
        with self._connect() as conn:
            try:
                conn.execute("INSERT INTO users (name, groups, password_hash, created_at, updated_at) "
                             "VALUES (?, ?, ?, ?, ?)",
                             (name, ",".join(parse_groups(groups)), self._hasher.hash(password), now, now))
            except sqlite3.IntegrityError:
                raise WorkbenchError(f"user {name!r} already exists: use `workbench users passwd {name}` "
                                     "to change the password or `users groups` to change groups") from None
        return self.get(name)

    def set_password(self, name: str, password: str) -> None:
        """Set a new password; the user's open sessions end. Refused for directory users."""
        self._check_password(password)
        self._local_only(name, "change the password in the directory")
        with self._connect() as conn:
            cur = conn.execute("UPDATE users SET password_hash=?, updated_at=max(?, updated_at + 1e-6) WHERE name=?",
                               (self._hasher.hash(password), time.time(), name))
        if cur.rowcount == 0:
            raise NotFoundError(f"no user {name!r}: see `workbench users list`")

    def set_groups(self, name: str, groups) -> User:
        """Replace the user's groups; their open sessions end (they sign in again with the new rights).
        Refused for directory users (their groups follow the directory)."""
        self._local_only(name, "change their groups in the directory or in [auth] groups")
        with self._connect() as conn:
            cur = conn.execute("UPDATE users SET groups=?, updated_at=max(?, updated_at + 1e-6) WHERE name=?",
                               (",".join(parse_groups(groups)), time.time(), name))
        if cur.rowcount == 0:
            raise NotFoundError(f"no user {name!r}: see `workbench users list`")
        return self.get(name)

    def sign_in_external(self, name: str, source: str, subject: str, groups) -> User:
        """Create or update directory user ``name`` at sign-in (no password is stored).

        A name belongs to the identity (source and subject) that first signed in with it: another
        identity under that name raises WorkbenchError (except an LDAP entry that the directory now
        gives that name: the directory decides its names, and the previous holder's sessions end) (an administrator frees the name with
        ``workbench users remove``), and so does a local account's name, so a directory can never
        take over a local (break-glass) account. New groups do not end open sessions.
        """
        check_name(name)
        groups = ",".join(parse_groups(groups))
        now = time.time()
        with self._connect() as conn:
            conn.execute("INSERT INTO users (name, groups, password_hash, created_at, updated_at, source, subject) "
                         "VALUES (?, ?, '', ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING",
                         (name, groups, now, now, source, subject))
            row = conn.execute("SELECT source, subject FROM users WHERE name=?", (name,)).fetchone()
            if row[0] == source == "ldap" and row[1] != subject:
                # the directory just checked the password of the entry that holds the name now (moved to
                # another OU, or the name reused): it decides; the previous holder's sessions end
                conn.execute("UPDATE users SET subject=?, updated_at=max(?, updated_at + 1e-6) WHERE name=?",
                             (subject, now, name))
            elif (row[0], row[1]) != (source, subject):
                raise WorkbenchError(f"the name {name!r} belongs to another account of the workbench "
                                     f"({row[0]}), so this {source} identity cannot sign in under it: if both are the "
                                     f"same person, an administrator frees the name with `workbench users remove {name}`")
            conn.execute("UPDATE users SET groups=? WHERE name=?", (groups, name))
        return self.get(name)

    def refresh_groups(self, name: str, groups, subject: str) -> User | None:
        """Set directory user ``name``'s groups as the directory has them now (open sessions go on,
        with the new rights from their next request), only while ``name`` is still ``subject``'s;
        None when the user is gone."""
        with self._connect() as conn:
            conn.execute("UPDATE users SET groups=? WHERE name=? AND subject=? AND source != 'local'",
                         (",".join(parse_groups(groups)), name, subject))
        return self.get(name)

    def _local_only(self, name: str, instead: str) -> None:
        user = self.get(name)
        if user is not None and user.source != "local":
            raise WorkbenchError(f"{name!r} signs in through the directory ({user.source}): {instead}")

    def remove(self, name: str, subject: str | None = None) -> None:
        """Delete ``name`` (only while it is ``subject``'s, when given) and revoke their API keys;
        NotFoundError when absent."""
        from workbench.stores.keys import KeyStore

        with self._connect() as conn:
            if subject is None:
                cur = conn.execute("DELETE FROM users WHERE name=?", (name,))
            else:
                cur = conn.execute("DELETE FROM users WHERE name=? AND subject=?", (name, subject))
        if cur.rowcount == 0:
            raise NotFoundError(f"no user {name!r}: see `workbench users list`")
        KeyStore(self.path.parent).revoke_all(name)

    def get(self, name: str | None) -> User | None:
        if not name or not self.path.exists():
            return None
        with self._connect() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM users WHERE name=?", (name,)).fetchone()
        return _user(row) if row else None

    def list(self) -> list[User]:
        if not self.path.exists():
            return []
        with self._connect() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM users ORDER BY name").fetchall()
        return [_user(r) for r in rows]

    def verify(self, name: str, password: str) -> User | None:
        """The local user when ``password`` is right, else None (same argon2 work for unknown names
        and for directory users, who have no password here).

        CPU-heavy (tens of milliseconds): servers call it off their event loop, behind a bound.
        """
        row = None
        if NAME_RE.match(name or "") and self.path.exists():
            with self._connect() as conn:
                row = conn.execute("SELECT password_hash FROM users WHERE name=? AND source='local'",
                                   (name,)).fetchone()
        try:
            ok = self._hasher.verify(row[0] if row else self._dummy, password or "") and row is not None
        except (VerificationError, InvalidHashError):
            ok = False
        return self.get(name) if ok else None

    @staticmethod
    def _check_password(password: str) -> None:
        if len(password or "") < MIN_PASSWORD:
            raise InvalidInputError(f"password too short: use at least {MIN_PASSWORD} characters")


def _user(row) -> User:
    return User(row[0], parse_groups(row[1]), row[2], row[3], row[4], row[5])
