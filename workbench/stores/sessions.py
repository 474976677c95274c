"""Web sign-in sessions and failed-login delays, kept in the server's memory.

`SessionStore` hands out random tokens at sign-in and answers "whose token is this?" on every
request. A session ends when it was idle for ``[web] session_idle_s``, when it is older than
``session_max_s``, when the user signs out, and when the user's password or groups changed or the
user was removed since sign-in (`workbench users ...` from another process included: the user's
``changed_at`` is compared on each lookup). `GradioTokens` lets Gradio's own routes (upload, files,
config, queue) use the same store.

`LoginThrottle` delays failed sign-ins per (client, name): after ``attempts`` failures that client
must wait before trying that name again, the wait doubling up to ``max_delay_s``. Other clients
are never delayed, so nobody can lock the rightful user out. Leaves out: persistence (a restart
signs everyone out) and password checks themselves (`workbench.users`).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Session:
    """One signed-in browser: whose it is, when it started, when it was last used."""

    user: str
    started: float
    last_seen: float
    user_changed_at: float  # the user's changed_at at sign-in


class SessionStore:
    """Server-side sessions with idle and absolute expiry and revocation on account changes."""

    def __init__(self, users, idle_s: float, max_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.users, self.idle_s, self.max_s, self.clock = users, idle_s, max_s, clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def start(self, user) -> str:
        """A new session for ``user`` (a `workbench.users.User`); returns its token."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            self._prune(now)
            self._sessions[token] = Session(user.name, now, now, user.changed_at)
        return token

    def user_of(self, token: str | None, touch: bool = True) -> str | None:
        """The user name of a live session, else None (and an expired or revoked session is ended)."""
        if not token:
            return None
        with self._lock:
            session = self._sessions.get(token)
        if session is None:
            return None
        now = self.clock()
        if now - session.last_seen > self.idle_s or now - session.started > self.max_s or not self._current(session):
            self.end(token)
            return None
        if touch:
            with self._lock:
                if token in self._sessions:
                    self._sessions[token] = Session(session.user, session.started, now, session.user_changed_at)
        return session.user

    def _current(self, session: Session) -> bool:
        user = self.users.get(session.user)
        return user is not None and user.changed_at == session.user_changed_at

    def end(self, token: str) -> None:
        with self._lock:
            self._sessions.pop(token, None)

    def end_user(self, name: str) -> int:
        """End every session of ``name``; how many there were."""
        with self._lock:
            tokens = [t for t, s in self._sessions.items() if s.user == name]
            for t in tokens:
                del self._sessions[t]
        return len(tokens)

    def tokens(self) -> list[tuple[str, str]]:
        """(token, user) of the sessions held now (expired ones included until next looked up)."""
        with self._lock:
            return [(t, s.user) for t, s in self._sessions.items()]

    def _prune(self, now: float) -> None:
        if len(self._sessions) > 1000:  # forget sessions that can no longer be valid
            self._sessions = {t: s for t, s in self._sessions.items()
                              if now - s.last_seen <= self.idle_s and now - s.started <= self.max_s}


class GradioTokens(MutableMapping):
    """Gradio's ``app.tokens`` (token → user name) backed by a `SessionStore`.

    Gradio reads it on every authenticated route and deletes from it at /logout; sign-in goes
    through the workbench's own route (`SessionStore.start`), so setting items is refused.
    """

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def __getitem__(self, token: str) -> str:
        user = self.store.user_of(token)
        if user is None:
            raise KeyError(token)
        return user

    def get(self, token, default=None):
        return self.store.user_of(token) or default

    def __contains__(self, token) -> bool:
        return self.store.user_of(token, touch=False) is not None

    def __setitem__(self, token: str, user: str) -> None:
        raise RuntimeError("sign-in goes through the workbench's /login route")

    def __delitem__(self, token: str) -> None:
        self.store.end(token)

    def __iter__(self) -> Iterator[str]:
        return iter([t for t, _ in self.store.tokens()])

    def __len__(self) -> int:
        return len(self.store.tokens())


class LoginThrottle:
    """Failed sign-ins counted per (client, name); a client waits only for the names it failed."""

    def __init__(self, attempts: int, max_delay_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.attempts, self.max_delay_s, self.clock = attempts, max_delay_s, clock
        self._failures: dict[tuple[str, str], tuple[int, float]] = {}  # (client, name) -> (count, last)
        self._lock = threading.Lock()

    def wait_s(self, client: str, name: str) -> float:
        """Seconds ``client`` must still wait before trying ``name`` again (0: go ahead)."""
        with self._lock:
            count, last = self._failures.get((client, name.lower()), (0, 0.0))
        if count < self.attempts:
            return 0.0
        delay = min(self.max_delay_s, 2.0 ** (count - self.attempts))
        return max(0.0, last + delay - self.clock())

    def failed(self, client: str, name: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._failures) > 10_000:  # spraying: forget pairs whose wait is long over
                self._failures = {k: v for k, v in self._failures.items() if now - v[1] < self.max_delay_s}
            count, _ = self._failures.get((client, name.lower()), (0, 0.0))
            self._failures[(client, name.lower())] = (count + 1, now)

    def succeeded(self, client: str, name: str) -> None:
        with self._lock:
            self._failures.pop((client, name.lower()), None)
