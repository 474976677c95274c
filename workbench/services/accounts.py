"""Who may sign in, with which groups: local accounts first, then the organization's directory.

`Accounts` decides between identity sources for every caller (web sign-in, session refresh,
``--as-user`` in the CLI and notebooks):

- a password sign-in is checked against the local account of that name if there is one (the
  break-glass admin, small sites), else against the LDAP/AD directory when one is configured;
- a directory user is written to the user store at sign-in with the groups ``[auth] groups`` maps
  theirs to (no ``users add``), and an OpenID user whose token carries no groups claim gets groups
  from the directory when one is configured;
- `refresh` re-reads a directory user's groups; a user gone or disabled there is removed from the
  store, which ends their sessions and keys; a directory that cannot be reached changes nothing;
- `principal` answers ``--as-user NAME`` from the store, else from the directory (without storing).

Leaves out: talking to the servers (`workbench.identity`), sessions and their refresh schedule
(`workbench_web.sessions`), and the OpenID redirect flow (`workbench_web.oidc`).
"""

from __future__ import annotations

import sys

from workbench.access import principal_for
from workbench.errors import DirectoryUnavailableError, NotFoundError
from workbench.identity.base import LOCAL, OIDC, Directory, DirectoryUser, map_groups
from workbench.records import Principal


class Accounts:
    """Sign-in, refresh and look-up of users across the local store and the directory (see module)."""

    def __init__(self, users, config, directory: Directory | None) -> None:
        self.users, self.config, self.directory = users, config, directory

    def sign_in(self, name: str, password: str):
        """The `User` when ``password`` is right for ``name`` (local account, else directory); None if not.

        Raises DirectoryUnavailableError when the directory would decide and cannot be reached.
        """
        local = self.users.get(name)
        if local is not None and local.source == LOCAL or self.directory is None:
            return self.users.verify(name, password)
        found = self.directory.authenticate(name, password)
        if found is None:
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
        if self.directory is not None:
            found = self.directory.lookup(name)
            return found.groups if found else ()
        return ()

    def refresh(self, name: str, claim_groups: tuple[str, ...] | None = None) -> bool:
        """Re-read directory user ``name``'s groups: False when they are gone (then removed here).

        Local users are always current (True). An OpenID user's groups come from ``claim_groups``
        (the provider's answer now) when given, else from the directory. A directory that cannot
        be reached keeps what is stored (True), said on stderr.
        """
        user = self.users.get(name)
        if user is None:
            return False
        if user.source == LOCAL:
            return True
        if user.source == OIDC and (claim_groups is not None or self.directory is None):
            self.users.refresh_groups(name, map_groups(claim_groups or (), self.config.auth.groups))
            return True
        try:
            found = self.directory.lookup(name)
        except DirectoryUnavailableError as exc:
            print(f"workbench: {name}'s groups were not refreshed: {exc}", file=sys.stderr)
            return True
        if found is None:
            self.users.remove(name)
            return False
        self.users.refresh_groups(name, found.groups)
        return True

    def principal(self, name: str) -> Principal:
        """The `Principal` of ``name``: the stored user, else the directory's (read now, not stored).

        NotFoundError when neither knows the name.
        """
        admin_group = self.config.web.admin_group
        user = self.users.get(name)
        if user is not None:
            return principal_for(user, admin_group)
        found: DirectoryUser | None = self.directory.lookup(name) if self.directory is not None else None
        if found is None:
            where = " or in the directory" if self.directory is not None else ""
            raise NotFoundError(f"no user {name!r} in the workbench{where}: see `workbench users list`")
        return principal_for(found, admin_group)
