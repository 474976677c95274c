"""Web sign-in sessions and failed-login delays, kept in the server's memory.

`SessionStore` hands out random tokens at sign-in and answers "whose token is this?" on every
request. A session ends when it was idle for ``[web] session_idle_s``, when it is older than
``session_max_s``, when the user signs out, and when the user's password or groups changed or the
user was removed since sign-in (`workbench users ...` from another process included: the user's
``changed_at`` is compared on each lookup), and when the ``refresh`` callback says the user is
gone: `start_refresher` runs it in a background thread for every session whose groups were last
read ``[auth] refresh_s`` ago (directory users' groups are re-read, see
`workbench.services.accounts`), so a request never waits for the directory.
`GradioTokens` plugs the store into Gradio's own routes
(upload, files, config, queue), so they see the same sessions as the workbench's sign-in.

`LoginThrottle` delays failed sign-ins per (client, name) and per client: after ``attempts``
failures that client must wait before trying that name again, the wait doubling up to
``max_delay_s``; it also bounds the checks one client runs at once. Other clients are never
delayed, so nobody can lock the rightful user out.

Only the web app uses these (the library keeps no sessions). Leaves out: persistence (a restart
signs everyone out), password checks themselves (`workbench.stores.users`), and the sign-in and
sign-out routes that use both classes (`workbench_web.signin`).
"""

from __future__ import annotations

import dataclasses
import secrets
import sys
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
    checked: float = 0.0  # when the directory was last asked about this user (the refresh)
    grant: object = None  # what the refresh needs of this sign-in (an OpenID `SignedIn`), never sent out


class SessionStore:
    """Server-side sessions with idle and absolute expiry and revocation on account changes."""

    def __init__(self, users, idle_s: float, max_s: float, clock: Callable[[], float] = time.monotonic,
                 refresh: Callable[[str, object], tuple[bool, object]] | None = None, refresh_s: float = 900.0) -> None:
        self.users, self.idle_s, self.max_s, self.clock = users, idle_s, max_s, clock
        self.refresh, self.refresh_s = refresh, refresh_s
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def start(self, user, grant: object = None) -> str:
        """A new session for ``user`` (a `workbench.stores.users.User`); returns its token. ``grant``
        is handed to the refresh callback (the OpenID sign-in, for directory users)."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            self._prune(now)
            self._sessions[token] = Session(user.name, now, now, user.changed_at, now, grant)
        return token

    def grant_of(self, token: str | None) -> object:
        """The grant the session of ``token`` was started with (None when there is none)."""
        with self._lock:
            session = self._sessions.get(token or "")
        return session.grant if session else None

    def refresh_due(self) -> int:
        """Ask the refresh callback about every live session whose last check is ``refresh_s`` old
        (once per user and grant, each round); end the sessions of users it reports gone, and of
        those it could not answer for (an unexpected error fails closed: sign in again). Expired
        sessions are ended without asking. How many sessions ended."""
        if self.refresh is None:
            return 0
        now = self.clock()
        with self._lock:
            sessions = list(self._sessions.items())
        due, ended = [], 0
        for token, session in sessions:
            if not self._live(session, now):
                self.end(token)
                ended += 1
            elif now - session.checked >= self.refresh_s:
                due.append((token, session))
        answers: dict[tuple[str, int], tuple[bool, object]] = {}
        for token, session in due:
            key = (session.user, id(session.grant))  # OpenID sessions each hold their own grant
            if key not in answers:
                try:
                    answers[key] = self.refresh(session.user, session.grant)
                except Exception as exc:  # noqa: BLE001 - one user's failure must not stop the round
                    print(f"workbench: {session.user}'s session ended: its rights could not be re-read "
                          f"({type(exc).__name__}: {exc})", file=sys.stderr)
                    answers[key] = (False, session.grant)
            still, grant = answers[key]
            with self._lock:
                current = self._sessions.get(token)
                if current is None:
                    continue
                if not still:
                    del self._sessions[token]
                    ended += 1
                else:
                    self._sessions[token] = dataclasses.replace(current, checked=self.clock(), grant=grant)
        return ended

    def _live(self, session: Session, now: float) -> bool:
        return (now - session.last_seen <= self.idle_s and now - session.started <= self.max_s
                and self._current(session))

    def start_refresher(self) -> threading.Event:
        """Run `refresh_due` in a daemon thread, a few times per ``refresh_s`` (at most every 30 s), so
        requests never wait for the directory; set the returned event to stop it."""
        stop = threading.Event()
        pause = min(30.0, max(0.2, self.refresh_s / 4))

        def loop() -> None:
            while not stop.wait(pause):
                try:
                    self.refresh_due()
                except Exception as exc:  # noqa: BLE001 - a failed round is retried; the server goes on
                    print(f"workbench: refreshing sessions failed: {type(exc).__name__}: {exc}", file=sys.stderr)

        threading.Thread(target=loop, name="session-refresh", daemon=True).start()
        return stop

    def user_of(self, token: str | None, touch: bool = True) -> str | None:
        """The user name of a live session, else None (and an expired or revoked session is ended)."""
        if not token:
            return None
        with self._lock:
            session = self._sessions.get(token)
        if session is None:
            return None
        now = self.clock()
        if not self._live(session, now):
            self.end(token)
            return None
        if touch:
            with self._lock:  # only last_seen changes: a grant the refresher renewed meanwhile is kept
                if token in self._sessions:
                    self._sessions[token] = dataclasses.replace(self._sessions[token], last_seen=now)
        return session.user

    def _current(self, session: Session) -> bool:
        user = self.users.get(session.user)
        return user is not None and user.changed_at == session.user_changed_at

    def end(self, token: str) -> None:
        with self._lock:
            self._sessions.pop(token, None)

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


def client_key(address: str) -> str:
    """The unit a client is counted in: its IPv4 address, or its IPv6 /64 (one host's many addresses)."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class LoginThrottle:
    """Failed sign-ins counted per (client, name) and per client; a client waits only for itself.

    `begin` reserves a password check (refusing a second one for the same client and name while one
    runs, and more than ``per_client`` at once for one client), `end` records its result. After
    ``attempts`` failures for a name, that client waits before trying that name again; after
    ``attempts`` x 4 failures across names (spraying), before trying any. The wait starts at 1 s
    and doubles per further failure, up to ``max_delay_s``.
    """

    def __init__(self, attempts: int, max_delay_s: float, per_client: int = 2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.attempts, self.max_delay_s, self.per_client, self.clock = attempts, max_delay_s, per_client, clock
        self._failures: dict[tuple[str, str], tuple[int, float]] = {}  # (client, name or "*") -> (count, last)
        self._running: dict[str, set[str]] = {}  # client -> names being checked now
        self._lock = threading.Lock()

    def _wait(self, key: tuple[str, str], threshold: int, now: float) -> float:
        count, last = self._failures.get(key, (0, 0.0))
        if count < threshold:
            return 0.0
        return max(0.0, last + min(self.max_delay_s, 2.0 ** (count - threshold)) - now)

    def wait_s(self, client: str, name: str) -> float:
        """Seconds ``client`` must still wait before trying ``name`` again (0: go ahead)."""
        client, now = client_key(client), self.clock()
        with self._lock:
            return max(self._wait((client, name.lower()), self.attempts, now),
                       self._wait((client, "*"), self.attempts * 4, now))

    def begin(self, client: str, name: str) -> float:
        """0 when a password check may start now (it is reserved: call `end`), else seconds to wait."""
        wait = self.wait_s(client, name)
        if wait > 0:
            return wait
        client = client_key(client)
        with self._lock:
            running = self._running.setdefault(client, set())
            if name.lower() in running or len(running) >= self.per_client:
                return 1.0
            running.add(name.lower())
        return 0.0

    def end(self, client: str, name: str, ok: bool | None) -> None:
        """The result of a check `begin` allowed: True (right password), False (wrong), or None (no
        check was made, e.g. the server was busy: nothing is counted)."""
        client, now = client_key(client), self.clock()
        with self._lock:
            running = self._running.get(client, set())
            running.discard(name.lower())
            if not running:
                self._running.pop(client, None)
            if ok is None:
                return
            if ok:
                self._failures.pop((client, name.lower()), None)
                return
            if len(self._failures) > 20_000:  # spraying from many addresses: forget long-finished waits
                self._failures = {k: v for k, v in self._failures.items() if now - v[1] < self.max_delay_s}
            for key in ((client, name.lower()), (client, "*")):
                count, _ = self._failures.get(key, (0, 0.0))
                self._failures[key] = (count + 1, now)

    def failed(self, client: str, name: str) -> None:
        """Record a failure without a reserved check (same as `begin` + `end(ok=False)`)."""
        self.end(client, name, False)

    def succeeded(self, client: str, name: str) -> None:
        self.end(client, name, True)
