"""Personal API keys: who a program acts as, with which scopes, until when, in ``<index>/keys.sqlite``.

`KeyStore.create` makes a key for a user and returns it once (``wbk_<id>_<secret>``, 32 random
bytes): only the SHA-256 of the secret is stored, so a copy of the store does not give the keys
(a hash of a high-entropy secret needs no slow hashing). `KeyStore.check` answers whose key a
request holds: a known id, the right secret (compared in constant time), not revoked, not
expired, and the scope asked for; it records when a key was last used. A key acts as its user
with the user's groups *now* (the caller resolves the user: a removed user's keys stop working).
Leaves out: rate limits and routes (`workbench_web.api`), and the user's own rights.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from workbench.access import check_name
from workbench.errors import InvalidInputError, NotFoundError
from workbench.records import _Record
from workbench.stores.sidecar import sidecar

SCOPES = ("search", "ask", "read")
SELF_SERVICE_KEYS = 20  # live keys a user may hold when making their own in the web app
PREFIX = "wbk_"
_COLUMNS = "id, user, label, scopes, created_at, expires_at, last_used, revoked_at, user_since"
_KEY = re.compile(r"^wbk_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
  id TEXT PRIMARY KEY,
  user TEXT NOT NULL,
  label TEXT NOT NULL,
  scopes TEXT NOT NULL,
  secret_sha256 TEXT NOT NULL,
  created_at REAL NOT NULL,
  expires_at REAL,
  last_used REAL,
  revoked_at REAL,
  user_since REAL
);
"""


@dataclass(frozen=True, slots=True)
class ApiKey(_Record):
    """One key as listed (never its secret)."""

    id: str
    user: str
    label: str
    scopes: tuple[str, ...]
    created_at: float
    expires_at: float | None = None
    last_used: float | None = None
    revoked_at: float | None = None
    user_since: float | None = None  # the account the key was made for (its creation time); see `KeyStore.create`

    @property
    def state(self) -> str:
        """'active', 'revoked' or 'expired' (now)."""
        return "revoked" if self.revoked_at else "expired" if self.expires_at and self.expires_at < time.time() else "active"

    @property
    def live(self) -> bool:
        return self.state == "active"

    def __str__(self) -> str:
        state = self.state
        return (f"{self.id}\t{self.user}\t{self.label}\t{','.join(self.scopes)}\tcreated {when(self.created_at)}\t"
                f"last used {when(self.last_used)}\texpires {when(self.expires_at)}\t{state}")


def when(t: float | None) -> str:
    """A key's time for people: '2026-12-07 21:25' (local time), '-' for none."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"


def parse_duration(text: str | None) -> float | None:
    """Seconds of '90d', '12h', '30m' (None for None or 'never'); InvalidInputError otherwise."""
    if text is None or text == "never":
        return None
    match = re.fullmatch(r"(\d{1,5})([dhm])", text.strip())
    if not match:
        raise InvalidInputError(f"expiry {text!r}: write a number and d, h or m, e.g. 90d, or 'never'")
    return int(match.group(1)) * {"d": 86400, "h": 3600, "m": 60}[match.group(2)]


def parse_scopes(text: str | None) -> tuple[str, ...]:
    """('search', 'ask', ...) from 'search,ask' (all when None); InvalidInputError for unknown scopes."""
    if text is None:
        return SCOPES
    scopes = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise InvalidInputError(f"scopes {text!r}: use some of {', '.join(SCOPES)}")
    return scopes


class KeyStore:
    """Create, list, revoke and check the API keys of one index (see module)."""

    def __init__(self, index_dir: str | Path, clock=time.time) -> None:
        self.path = Path(index_dir) / "keys.sqlite"
        self.clock = clock

    @contextmanager
    def _connect(self):
        with sidecar(self.path, _SCHEMA, wal=True) as conn:
            if "user_since" not in {r[1] for r in conn.execute("PRAGMA table_info(keys)")}:  # an older store
                conn.execute("ALTER TABLE keys ADD COLUMN user_since REAL")
            yield conn

    def create(self, user: str, label: str, scopes=SCOPES, expires_s: float | None = None,
               user_since: float | None = None) -> tuple[ApiKey, str]:
        """A new key of ``user``: the listed record and the key itself, which is shown this once.

        ``user_since``: when that user's account was created (`workbench.stores.users.User.created_at`);
        the key works only while the account under that name is still the same one, so an account
        removed and a new one made under the same name does not inherit the old keys."""
        check_name(user)
        label = (label or "").strip()
        if not label or len(label) > 100 or not label.isprintable():
            raise InvalidInputError("a key needs a label (1-100 printable characters) saying what uses it")
        key_id = "".join(secrets.choice("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(12))
        secret = secrets.token_urlsafe(32)
        now = self.clock()
        with self._connect() as conn:
            conn.execute("INSERT INTO keys (id, user, label, scopes, secret_sha256, created_at, expires_at, user_since) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (key_id, user, label, ",".join(scopes),
                                                             hashlib.sha256(secret.encode()).hexdigest(), now,
                                                             now + expires_s if expires_s else None, user_since))
        return self.get(key_id), f"{PREFIX}{key_id}_{secret}"

    def get(self, key_id: str) -> ApiKey | None:
        if not self.path.exists():
            return None
        with self._connect() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM keys WHERE id=?", (key_id,)).fetchone()
        return _key(row) if row else None

    def list(self, user: str | None = None) -> list[ApiKey]:
        if not self.path.exists():
            return []
        sql = f"SELECT {_COLUMNS} FROM keys"
        with self._connect() as conn:
            rows = conn.execute(sql + (" WHERE user=?" if user else "") + " ORDER BY created_at",
                                (user,) if user else ()).fetchall()
        return [_key(r) for r in rows]

    def revoke_all(self, user: str) -> int:
        """Revoke every key of ``user`` (their account was removed); how many were live."""
        if not self.path.exists():
            return 0
        with self._connect() as conn:
            return conn.execute("UPDATE keys SET revoked_at=? WHERE user=? AND revoked_at IS NULL",
                                (self.clock(), user)).rowcount

    def revoke(self, key_id: str, user: str | None = None) -> None:
        """Revoke ``key_id`` (only ``user``'s, when given); NotFoundError when there is no such key."""
        with self._connect() as conn:
            cur = conn.execute("UPDATE keys SET revoked_at=coalesce(revoked_at, ?) WHERE id=?"
                               + (" AND user=?" if user else ""), (self.clock(), key_id, *((user,) if user else ())))
        if cur.rowcount == 0:
            raise NotFoundError(f"no key {key_id!r}: see `workbench keys list`")

    def check(self, token: str | None, scope: str | None) -> tuple[ApiKey | None, str]:
        """(the key, "") when ``token`` is a live key with ``scope`` (None: any); else (None, why) for a
        token that is no key of this store, (the key, why) for a revoked or expired key (`ApiKey.live`
        is false) or one lacking the scope. A live key's use is recorded (``last_used``, at most once
        a minute) even when it lacks the scope."""
        match = _KEY.match(token or "")
        if not match or not self.path.exists():
            return None, "not a key of this server"
        key_id, secret = match.groups()
        with self._connect() as conn:
            row = conn.execute("SELECT secret_sha256 FROM keys WHERE id=?", (key_id,)).fetchone()
        given = hashlib.sha256(secret.encode()).hexdigest()
        if row is None or not hmac.compare_digest(row[0], given):
            return None, "not a key of this server"
        key = self.get(key_id)
        now = self.clock()
        if key.revoked_at is not None:
            return key, "this key was revoked"
        if key.expires_at is not None and key.expires_at <= now:
            return key, "this key has expired"
        if key.last_used is None or now - key.last_used > 60:  # at most one write a minute per key
            with self._connect() as conn:
                conn.execute("UPDATE keys SET last_used=? WHERE id=?", (now, key_id))
        if scope is not None and scope not in key.scopes:
            return key, f"this key may not {scope} (its scopes: {', '.join(key.scopes)})"
        return key, ""


def _key(row) -> ApiKey:
    return ApiKey(row[0], row[1], row[2], tuple(s for s in row[3].split(",") if s), row[4], row[5], row[6], row[7],
                  row[8])
