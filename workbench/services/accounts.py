"""Who may sign in, with which groups: local accounts first, then the organization's directory.

`Accounts` decides between identity sources for every caller (web sign-in, session refresh,
``--as-user`` in the CLI and notebooks):

- a password sign-in is checked against the local account of that name if there is one (the
  break-glass admin, small sites), else against the LDAP/AD directory when one is configured;
- a directory user is written to the user store at sign-in with the groups ``[auth] groups`` maps
  theirs to (no ``users add``), and an OpenID user whose token carries no groups claim gets groups
  from the directory when one is configured;
- a name belongs to the identity that first signed in with it (its source and subject): another
  identity under that name (a reused LDAP name, an OpenID name claim set to a colleague's) is
  refused until an administrator runs ``workbench users remove NAME``;
- wrong directory passwords for one name are capped (`MAX_FAILED_BINDS` per `FAILED_BINDS_S`, from all
  clients together), below Active Directory's lockout threshold, so the sign-in form cannot be used
  to lock a person's account out of the whole organization;
- `refresh` re-reads a directory user's groups; a user gone or disabled there (or whose name now
  belongs to another entry) is removed from the store, which ends their sessions; a directory that
  cannot be reached changes nothing;
- `principal` answers ``--as-user NAME`` from the store, else from the directory (without storing).

Leaves out: talking to the servers (`workbench.identity`), sessions and their refresh schedule
(`workbench_web.sessions`), and the OpenID redirect flow (`workbench_web.oidc`).
"""

from __future__ import annotations

import sys
import threading
import time

from workbench.access import principal_for
from workbench.errors import DirectoryUnavailableError, NotFoundError
from workbench.identity.base import LOCAL, OIDC, Directory, DirectoryUser, map_groups
from workbench.records import Principal


MAX_FAILED_BINDS = 3  # wrong directory passwords per name (all clients together) before binds pause
FAILED_BINDS_S = 900.0  # ... for this long: below AD's usual lockout threshold (5-10 in 15-30 minutes)


class Accounts:
    """Sign-in, refresh and look-up of users across the local store and the directory (see module)."""

    def __init__(self, users, config, directory: Directory | None, clock=time.monotonic) -> None:
        self.users, self.config, self.directory, self.clock = users, config, directory, clock
        self._failed: dict[str, list[float]] = {}  # name (lower case) -> times of wrong directory passwords
        self._lock = threading.Lock()

    def _binds_paused(self, name: str) -> bool:
        now = self.clock()
        with self._lock:
            recent = [t for t in self._failed.get(name.lower(), []) if now - t < FAILED_BINDS_S]
            if recent:
                self._failed[name.lower()] = recent
            else:
                self._failed.pop(name.lower(), None)
            return len(recent) >= MAX_FAILED_BINDS

    def _bind_failed(self, name: str) -> None:
        with self._lock:
            if len(self._failed) > 50_000:
                self._failed.clear()  # a spray over many names: start counting again rather than grow
            self._failed.setdefault(name.lower(), []).append(self.clock())

    def sign_in(self, name: str, password: str):
        """The `User` when ``password`` is right for ``name`` (local account, else directory); None if not.

        Raises DirectoryUnavailableError when the directory would decide and cannot be reached.
        """
        local = self.users.get(name)
        if local is not None and local.source == LOCAL or self.directory is None:
            return self.users.verify(name, password)
        if self._binds_paused(name):
            return None  # no bind: the directory's own lockout counter is not moved
        found = self.directory.authenticate(name, password)
        if found is None:
            if password and password.strip():
                self._bind_failed(name)
            return None
        return self.users.sign_in_external(found.name, found.source, found.subject, found.groups)

    def sign_in_oidc(self, name: str, subject: str, claim_groups: tuple[str, ...] | None):
        """The `User` of someone the OpenID provider vouched for: groups from the token's claim
        (mapped), else from the directory, else none. WorkbenchError when ``name`` is a local account."""
        groups = self._oidc_groups(name, claim_groups)
        return self.users.sign_in_external(name, OIDC, subject, groups)

    def _oidc_groups(self, name: str, claim_groups: tuple[str, ...] | None) -> tuple[str, ...]:
        if claim_groups is not None:
            return map_groups(claim_groups, self.config.auth.groups)
        found = self._directory_entry(name)
        return found.groups if found else ()

    def _directory_entry(self, name: str) -> DirectoryUser | None:
        """The directory's entry for exactly ``name`` (same spelling, case included), else None."""
        if self.directory is None:
            return None
        found = self.directory.lookup(name)
        return found if found is not None and found.name == name else None

    def refresh(self, name: str, claim_groups: tuple[str, ...] | None = None, subject: str | None = None,
                groups_from_claim: bool = False) -> bool:
        """Re-read directory user ``name``'s groups: False when they are gone (then removed here).

        ``subject``: the identity the session signed in as; another identity now stored under
        ``name`` means the session's user is gone. Local users are always current (True). An OpenID
        user's groups come from ``claim_groups`` (the provider's answer now) when given; when the
        provider's answer carries none, groups that came from the claim at sign-in are kept
        (``groups_from_claim``), else they are read from the directory. A directory that cannot be
        reached keeps what is stored (True), said on stderr.
        """
        user = self.users.get(name)
        if user is None or (subject is not None and user.subject != subject):
            return False
        if user.source == LOCAL:
            return True
        if user.source == OIDC:
            if claim_groups is not None:
                self.users.refresh_groups(name, map_groups(claim_groups, self.config.auth.groups), user.subject)
                return True
            if groups_from_claim or self.directory is None:
                return True
        try:
            found = self._directory_entry(name)
        except DirectoryUnavailableError as exc:
            print(f"workbench: {name}'s groups were not refreshed: {exc}", file=sys.stderr)
            return True
        if found is None or (user.source != OIDC and found.subject.lower() != user.subject.lower()):
            self._remove(name, user.subject)
            return False
        self.users.refresh_groups(name, found.groups, user.subject)
        return True

    def _remove(self, name: str, subject: str) -> None:
        try:
            self.users.remove(name, subject=subject)
        except NotFoundError:
            pass  # removed meanwhile (another session's refresh, or an administrator)

    def principal(self, name: str) -> Principal:
        """The `Principal` of ``name``: the stored user, else the directory's (read now, not stored).

        NotFoundError when neither knows the name.
        """
        admin_group = self.config.web.admin_group
        user = self.users.get(name)
        if user is not None:
            return principal_for(user, admin_group)
        found = self._directory_entry(name)
        if found is None:
            where = " or in the directory" if self.directory is not None else ""
            raise NotFoundError(f"no user {name!r} in the workbench{where}: see `workbench users list`")
        return principal_for(found, admin_group)
